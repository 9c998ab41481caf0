// llama-server's streamed messages as two generations of the server spell them: the older
// /completion final message (stopped_eos/stopped_limit flags, predicted_per_second = n / ms, the
// shape of llama.cpp's 2024 server README) and the newer one (stop_type, cache_n, the first
// token free so predicted_per_second = (n - 1) / ms; recorded from the llama-server built from
// the llama-cpp-python 0.3.36 sdist), plus /v1/chat/completions chunks with usage and timings.
#include <gtest/gtest.h>

#include "backends/llama_server_json.h"

using namespace edgellm::backends;
using nlohmann::json;

namespace {

// Older server, a 1-token run: it divides 1 token by 0.001 ms and claims 1,000,000 tok/s.
const char* older_final_one_token = R"({"content":"","id_slot":0,"stop":true,"model":"m.gguf","tokens_predicted":1,
 "tokens_evaluated":12,"generation_settings":{"n_ctx":512},"prompt":"Hello","truncated":false,"stopped_eos":true,
 "stopped_word":false,"stopped_limit":false,"stopping_word":"","tokens_cached":12,
 "timings":{"prompt_n":12,"prompt_ms":35.2,"prompt_per_token_ms":2.933,"prompt_per_second":340.9,
 "predicted_n":1,"predicted_ms":0.001,"predicted_per_token_ms":0.001,"predicted_per_second":1000000.0}})";

const char* older_final_limit = R"({"content":"","stop":true,"tokens_predicted":32,"tokens_evaluated":12,
 "stopped_eos":false,"stopped_word":false,"stopped_limit":true,
 "timings":{"prompt_n":12,"prompt_ms":30.0,"prompt_per_second":400.0,"predicted_n":32,"predicted_ms":320.0,
 "predicted_per_second":100.0}})";

// Newer server (0.3.36's llama.cpp): stop_type, cache_n, and (n - 1) / ms.
const char* newer_final = R"({"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"model":"gpt-3.5-turbo",
 "tokens_predicted":32,"tokens_evaluated":12,"generation_settings":{"n_predict":32},"prompt":"<s> Hello",
 "has_new_line":false,"truncated":false,"stop_type":"limit","stopping_word":"","tokens_cached":43,
 "timings":{"cache_n":0,"prompt_n":12,"prompt_ms":24.0,"prompt_per_token_ms":2.0,"prompt_per_second":500.0,
 "predicted_n":32,"predicted_ms":310.0,"predicted_per_token_ms":10.0,"predicted_per_second":100.0}})";

const char* newer_final_one_token = R"({"content":"","stop":true,"tokens_predicted":1,"tokens_evaluated":12,
 "stop_type":"eos","timings":{"cache_n":0,"prompt_n":12,"prompt_ms":24.0,"prompt_per_second":500.0,
 "predicted_n":1,"predicted_ms":0.001,"predicted_per_token_ms":0.0,"predicted_per_second":0.0}})";

}  // namespace

TEST(LlamaServerJson, PartialCompletionMessageIsAPiece) {
    auto ev = parse_llama_server_event(json::parse(R"({"index":0,"content":" time","tokens":[931],"stop":false})"), false);
    EXPECT_EQ(ev.content, " time");
    EXPECT_FALSE(ev.final);
    EXPECT_FALSE(ev.timings);
    EXPECT_TRUE(ev.error.empty());
}

TEST(LlamaServerJson, OlderFinalMessageWithStoppedFlags) {
    auto ev = parse_llama_server_event(json::parse(older_final_limit), false);
    EXPECT_TRUE(ev.final);
    EXPECT_EQ(ev.finish_reason, "length");
    EXPECT_EQ(ev.n_gen_tokens, 32);
    EXPECT_EQ(ev.n_prompt_tokens, 12);
    ASSERT_TRUE(ev.timings);
    EXPECT_EQ(ev.timings->predicted_n, 32);
    EXPECT_DOUBLE_EQ(*ev.timings->predicted_ms, 320.0);
    EXPECT_FALSE(ev.timings->cache_n);
    EXPECT_DOUBLE_EQ(*server_decode_tokens_per_s(*ev.timings), 100.0);
    EXPECT_DOUBLE_EQ(*server_prefill_tokens_per_s(*ev.timings), 400.0);

    auto eos = parse_llama_server_event(json::parse(older_final_one_token), false);
    EXPECT_EQ(eos.finish_reason, "stop");
}

TEST(LlamaServerJson, OneTokenHasNoServerDecodeSpeedWhateverTheServerClaims) {
    for (const char* doc : {older_final_one_token, newer_final_one_token}) {
        auto ev = parse_llama_server_event(json::parse(doc), false);
        ASSERT_TRUE(ev.timings) << doc;
        EXPECT_EQ(ev.timings->predicted_n, 1);
        EXPECT_FALSE(server_decode_tokens_per_s(*ev.timings)) << doc;  // not 1,000,000 nor 0
        EXPECT_TRUE(server_prefill_tokens_per_s(*ev.timings)) << doc;
    }
}

TEST(LlamaServerJson, NewerFinalMessageWithStopTypeAndCache) {
    auto ev = parse_llama_server_event(json::parse(newer_final), false);
    EXPECT_TRUE(ev.final);
    EXPECT_EQ(ev.finish_reason, "length");
    EXPECT_EQ(ev.n_gen_tokens, 32);
    ASSERT_TRUE(ev.timings);
    EXPECT_EQ(ev.timings->cache_n, 0);
    EXPECT_EQ(ev.timings->prompt_n, 12);
    // The server's own figure, as it computes it: (32 - 1) / 0.31 s = 100.
    EXPECT_DOUBLE_EQ(*server_decode_tokens_per_s(*ev.timings), 100.0);
    auto eos = parse_llama_server_event(json::parse(newer_final_one_token), false);
    EXPECT_EQ(eos.finish_reason, "stop");
}

TEST(LlamaServerJson, TimingsWithoutPerSecondFieldsAreComputed) {
    auto t = parse_llama_server_timings(json::parse(R"({"prompt_n":10,"prompt_ms":20.0,"predicted_n":5,"predicted_ms":50.0})"));
    EXPECT_DOUBLE_EQ(*server_prefill_tokens_per_s(t), 500.0);
    EXPECT_DOUBLE_EQ(*server_decode_tokens_per_s(t), 100.0);
    auto junk = parse_llama_server_timings(json::parse(R"({"prompt_n":"ten","predicted_ms":null})"));
    EXPECT_FALSE(junk.prompt_n);
    EXPECT_FALSE(junk.predicted_ms);
    EXPECT_FALSE(server_decode_tokens_per_s(junk));
}

TEST(LlamaServerJson, ChatChunksCarryDeltaFinishUsageAndTimings) {
    auto piece = parse_llama_server_event(
        json::parse(R"({"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],
                        "object":"chat.completion.chunk"})"),
        true);
    EXPECT_EQ(piece.content, "Hi");
    EXPECT_FALSE(piece.final);

    auto last = parse_llama_server_event(
        json::parse(R"({"choices":[{"finish_reason":"length","index":0,"delta":{}}],"object":"chat.completion.chunk",
                        "timings":{"cache_n":0,"prompt_n":30,"prompt_ms":60.0,"prompt_per_second":500.0,
                                   "predicted_n":16,"predicted_ms":150.0,"predicted_per_second":100.0}})"),
        true);
    EXPECT_TRUE(last.final);
    EXPECT_EQ(last.finish_reason, "length");
    ASSERT_TRUE(last.timings);
    EXPECT_EQ(last.timings->predicted_n, 16);

    auto usage = parse_llama_server_event(
        json::parse(R"({"choices":[],"object":"chat.completion.chunk",
                        "usage":{"completion_tokens":16,"prompt_tokens":30,"total_tokens":46}})"),
        true);
    EXPECT_FALSE(usage.final);
    EXPECT_EQ(usage.n_gen_tokens, 16);
    EXPECT_EQ(usage.n_prompt_tokens, 30);
}

TEST(LlamaServerJson, ErrorsInEitherSpelling) {
    auto a = parse_llama_server_event(json::parse(R"({"error":{"code":400,"message":"bad n_predict","type":"invalid_request_error"}})"), false);
    EXPECT_EQ(a.error, "bad n_predict");
    auto b = parse_llama_server_event(json::parse(R"({"error":"slot unavailable"})"), true);
    EXPECT_EQ(b.error, "slot unavailable");
    auto c = parse_llama_server_event(json::parse("[1,2]"), false);
    EXPECT_NE(c.error.find("not a JSON object"), std::string::npos);
}
