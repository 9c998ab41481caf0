// The C API (include/edgellm/edgellm.h): error paths (NULL arguments, bad and truncated files,
// small buffers, cancellation), per-thread errors, and generation on stories260K checked against
// the low-level eval + argmax path of the same API.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "edgellm/edgellm.h"
#include "test_util.h"

namespace {

struct model_deleter {
    void operator()(edgellm_model* m) const { edgellm_model_free(m); }
};
struct context_deleter {
    void operator()(edgellm_context* c) const { edgellm_context_free(c); }
};
using model_ptr = std::unique_ptr<edgellm_model, model_deleter>;
using context_ptr = std::unique_ptr<edgellm_context, context_deleter>;

model_ptr load(const std::string& path) {
    edgellm_model* m = nullptr;
    const edgellm_status s = edgellm_model_load(path.c_str(), nullptr, &m);
    EXPECT_EQ(s, EDGELLM_OK) << edgellm_last_error();
    return model_ptr(m);
}

context_ptr make_context(const edgellm_model* m, int64_t n_ctx = 256) {
    edgellm_context_params p = edgellm_context_default_params();
    p.n_ctx = n_ctx;
    p.n_threads = 1;
    edgellm_context* c = nullptr;
    EXPECT_EQ(edgellm_context_create(m, &p, &c), EDGELLM_OK) << edgellm_last_error();
    return context_ptr(c);
}

std::vector<edgellm_token> tokenize(const edgellm_model* m, const std::string& text, bool add_bos = true) {
    std::vector<edgellm_token> ids(text.size() + 8);
    size_t n = 0;
    EXPECT_EQ(edgellm_tokenize(m, text.data(), text.size(), add_bos, false, ids.data(), ids.size(), &n), EDGELLM_OK)
        << edgellm_last_error();
    ids.resize(n);
    return ids;
}

struct collected {
    std::vector<edgellm_token> tokens;
    std::string text;
    int stop_after = -1;  // return false after this many tokens
    int final_calls = 0;
};

bool collect(edgellm_token token, const char* piece, size_t len, void* ud) {
    auto* c = static_cast<collected*>(ud);
    c->text.append(piece, len);
    if (token < 0) {
        ++c->final_calls;
        return true;
    }
    c->tokens.push_back(token);
    return c->stop_after < 0 || static_cast<int>(c->tokens.size()) < c->stop_after;
}

edgellm_generate_params greedy(int n, collected* c) {
    edgellm_generate_params g = edgellm_generate_default_params();
    g.n_predict = n;
    g.sampling.temperature = 0;
    g.on_token = collect;
    g.user_data = c;
    return g;
}

TEST(CApi, VersionAndStatusNames) {
    EXPECT_EQ(edgellm_api_version(), EDGELLM_API_VERSION);
    EXPECT_STREQ(edgellm_version(), EDGELLM_VERSION);
    EXPECT_STREQ(edgellm_status_name(EDGELLM_ERR_MODEL), "EDGELLM_ERR_MODEL");
    edgellm_status unknown;
    const int v = 99;
    std::memcpy(&unknown, &v, sizeof v);
    EXPECT_STREQ(edgellm_status_name(unknown), "EDGELLM_ERR_UNKNOWN");
}

TEST(CApi, LoadRejectsNullMissingAndBadFiles) {
    edgellm_model* m = reinterpret_cast<edgellm_model*>(0x1);
    EXPECT_EQ(edgellm_model_load(nullptr, nullptr, &m), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(edgellm_last_error()).find("path"), std::string::npos);
    EXPECT_EQ(edgellm_model_load("x.gguf", nullptr, nullptr), EDGELLM_ERR_INVALID_ARGUMENT);

    EXPECT_EQ(edgellm_model_load("/nonexistent/model.gguf", nullptr, &m), EDGELLM_ERR_IO);
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(edgellm_last_error()).find("/nonexistent/model.gguf"), std::string::npos);

    const auto dir = std::filesystem::temp_directory_path();
    EXPECT_EQ(edgellm_model_load(dir.c_str(), nullptr, &m), EDGELLM_ERR_IO);

    const auto junk = dir / ("edgellm_capi_junk_" + std::to_string(::getpid()) + ".gguf");
    std::ofstream(junk) << "this is not a GGUF file at all";
    EXPECT_EQ(edgellm_model_load(junk.c_str(), nullptr, &m), EDGELLM_ERR_MODEL);
    EXPECT_NE(std::string(edgellm_last_error()), "");
    std::filesystem::remove(junk);
}

TEST(CApi, TruncatedGgufIsAModelError) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto cut = std::filesystem::temp_directory_path() / ("edgellm_capi_cut_" + std::to_string(::getpid()) + ".gguf");
    for (size_t keep : {size_t{10}, bytes.size() / 2, bytes.size() - 7}) {
        std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
        edgellm_model* m = nullptr;
        EXPECT_EQ(edgellm_model_load(cut.c_str(), nullptr, &m), EDGELLM_ERR_MODEL) << "kept " << keep << " bytes";
        EXPECT_EQ(m, nullptr);
        EXPECT_GT(std::strlen(edgellm_last_error()), 10u) << "kept " << keep;
    }
    std::filesystem::remove(cut);
}

TEST(CApi, LastErrorIsPerThread) {
    edgellm_model* m = nullptr;
    ASSERT_EQ(edgellm_model_load("/nonexistent/a.gguf", nullptr, &m), EDGELLM_ERR_IO);
    std::string other = "unset";
    std::thread([&] { other = edgellm_last_error(); }).join();
    EXPECT_EQ(other, "");
    EXPECT_NE(std::string(edgellm_last_error()), "");
}

bool cancel_at_first(float, void* ud) {
    ++*static_cast<int*>(ud);
    return false;
}

TEST(CApi, ProgressCallbackCancelsTheLoad) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    edgellm_model_params p = edgellm_model_default_params();
    int calls = 0;
    p.progress_callback = cancel_at_first;
    p.progress_user_data = &calls;
    edgellm_model* m = nullptr;
    EXPECT_EQ(edgellm_model_load(path.c_str(), &p, &m), EDGELLM_ERR_CANCELLED);
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(calls, 1);
}

TEST(CApi, ModelInfoTokenizeAndBuffers) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    ASSERT_TRUE(m);
    edgellm_model_info info{};
    ASSERT_EQ(edgellm_model_get_info(m.get(), &info), EDGELLM_OK);
    EXPECT_STREQ(info.arch, "llama");
    EXPECT_EQ(info.n_vocab, 512);
    EXPECT_GT(info.n_ctx_train, 0);
    EXPECT_TRUE(info.has_tokenizer);
    EXPECT_GE(info.bos, 0);
    EXPECT_NE(std::string(info.type_mix), "");
    EXPECT_EQ(edgellm_model_get_info(nullptr, &info), EDGELLM_ERR_INVALID_ARGUMENT);

    const std::string text = "Once upon a time";
    const auto ids = tokenize(m.get(), text);
    ASSERT_GT(ids.size(), 2u);
    EXPECT_EQ(ids[0], info.bos);
    // Too small a buffer: the size needed comes back.
    edgellm_token one[1];
    size_t n = 0;
    EXPECT_EQ(edgellm_tokenize(m.get(), text.data(), text.size(), true, false, one, 1, &n), EDGELLM_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(n, ids.size());
    EXPECT_EQ(edgellm_tokenize(nullptr, text.data(), text.size(), true, false, one, 1, &n), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(edgellm_tokenize(m.get(), nullptr, 3, true, false, one, 1, &n), EDGELLM_ERR_INVALID_ARGUMENT);

    char buf[64];
    ASSERT_EQ(edgellm_detokenize(m.get(), ids.data() + 1, ids.size() - 1, false, buf, sizeof buf, &n), EDGELLM_OK);
    EXPECT_EQ(std::string(buf, n), text);
    char small[4];
    EXPECT_EQ(edgellm_detokenize(m.get(), ids.data() + 1, ids.size() - 1, false, small, sizeof small, &n),
              EDGELLM_ERR_BUFFER_TOO_SMALL);
    EXPECT_EQ(n, text.size());
    EXPECT_STREQ(small, "Onc");  // truncated, still NUL-terminated
    const edgellm_token bad = 100000;
    EXPECT_EQ(edgellm_detokenize(m.get(), &bad, 1, false, buf, sizeof buf, &n), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(edgellm_last_error()).find("100000"), std::string::npos);
}

TEST(CApi, ChatTemplate) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    const edgellm_chat_message msgs[] = {{"user", "hi"}};
    char buf[512];
    size_t n = 0;
    ASSERT_EQ(edgellm_chat_apply_template(m.get(), "chatml", msgs, 1, true, buf, sizeof buf, &n), EDGELLM_OK)
        << edgellm_last_error();
    EXPECT_EQ(std::string(buf, n), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(edgellm_chat_apply_template(m.get(), "no-such-template", msgs, 1, true, buf, sizeof buf, &n),
              EDGELLM_ERR_USAGE);
    const edgellm_chat_message bad[] = {{"user", nullptr}};
    EXPECT_EQ(edgellm_chat_apply_template(m.get(), nullptr, bad, 1, true, buf, sizeof buf, &n), EDGELLM_ERR_USAGE);
    char name[32];
    size_t src_len = 0;
    ASSERT_EQ(edgellm_model_chat_template(m.get(), name, sizeof name, nullptr, 0, &src_len), EDGELLM_ERR_BUFFER_TOO_SMALL);
    EXPECT_GT(src_len, 0u);
    EXPECT_NE(std::string(name), "");
}

TEST(CApi, GreedyGenerationMatchesEvalArgmax) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    context_ptr ctx = make_context(m.get());
    ASSERT_TRUE(ctx);
    const auto prompt = tokenize(m.get(), "Once upon a time");
    collected c;
    edgellm_generate_params g = greedy(24, &c);
    g.ignore_eos = true;
    edgellm_generate_result r{};
    ASSERT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, &r), EDGELLM_OK) << edgellm_last_error();
    EXPECT_EQ(r.stop_reason, EDGELLM_STOP_LENGTH);
    EXPECT_EQ(r.n_gen, 24);
    EXPECT_EQ(r.n_prompt, static_cast<int64_t>(prompt.size()));
    ASSERT_EQ(c.tokens.size(), 24u);
    EXPECT_EQ(c.final_calls, 1);
    // The text streamed is the detokenized continuation.
    char buf[1024];
    size_t n = 0;
    ASSERT_EQ(edgellm_detokenize(m.get(), c.tokens.data(), c.tokens.size(), false, buf, sizeof buf, &n), EDGELLM_OK);
    EXPECT_EQ(c.text, std::string(buf, n));

    // The same greedy tokens from eval + argmax (the low-level path).
    ASSERT_EQ(edgellm_kv_len(ctx.get()), 0);
    ASSERT_EQ(edgellm_eval(ctx.get(), prompt.data(), prompt.size(), false), EDGELLM_OK) << edgellm_last_error();
    edgellm_model_info info{};
    edgellm_model_get_info(m.get(), &info);
    std::vector<edgellm_token> argmax;
    for (int i = 0; i < 24; ++i) {
        const float* l = edgellm_get_logits(ctx.get(), -1);
        ASSERT_NE(l, nullptr);
        const edgellm_token t = static_cast<edgellm_token>(std::max_element(l, l + info.n_vocab) - l);
        argmax.push_back(t);
        ASSERT_EQ(edgellm_eval(ctx.get(), &t, 1, false), EDGELLM_OK);
    }
    EXPECT_EQ(argmax, c.tokens);
    EXPECT_EQ(edgellm_kv_len(ctx.get()), static_cast<int64_t>(prompt.size() + 24));
    EXPECT_EQ(edgellm_get_logits(ctx.get(), 1), nullptr);  // one output only
    EXPECT_EQ(edgellm_kv_truncate(ctx.get(), 1000), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(edgellm_kv_truncate(ctx.get(), 0), EDGELLM_OK);

    // A sampler at temperature 0 picks the arg-max too.
    edgellm_sampling_params sp = edgellm_sampling_default_params();
    sp.temperature = 0;
    edgellm_sampler* s = nullptr;
    ASSERT_EQ(edgellm_sampler_create(m.get(), &sp, &s), EDGELLM_OK);
    ASSERT_EQ(edgellm_eval(ctx.get(), prompt.data(), prompt.size(), true), EDGELLM_OK);
    edgellm_token t = -1;
    ASSERT_EQ(edgellm_sampler_sample(s, edgellm_get_logits(ctx.get(), -1), &t), EDGELLM_OK);
    EXPECT_EQ(t, argmax[0]);
    EXPECT_NE(edgellm_get_logits(ctx.get(), 0), nullptr);  // all_logits: one row per token
    edgellm_sampler_free(s);
}

TEST(CApi, StopStringsAndCancellation) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    context_ptr ctx = make_context(m.get());
    const auto prompt = tokenize(m.get(), "Once upon a time");
    collected full;
    edgellm_generate_params g = greedy(40, &full);
    g.ignore_eos = true;
    ASSERT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, nullptr), EDGELLM_OK);
    ASSERT_GT(full.text.size(), 30u);
    const std::string stop = full.text.substr(15, 4);
    const size_t at = full.text.find(stop);

    collected cut;
    edgellm_generate_params gs = greedy(40, &cut);
    gs.ignore_eos = true;
    const char* stops[] = {"never-in-this-text", stop.c_str()};
    gs.stop = stops;
    gs.n_stop = 2;
    edgellm_generate_result r{};
    ASSERT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &gs, &r), EDGELLM_OK);
    EXPECT_EQ(r.stop_reason, EDGELLM_STOP_STRING);
    EXPECT_EQ(cut.text, full.text.substr(0, at));
    EXPECT_LT(cut.tokens.size(), full.tokens.size());

    collected three;
    three.stop_after = 3;
    edgellm_generate_params gc = greedy(40, &three);
    ASSERT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &gc, &r), EDGELLM_OK);
    EXPECT_EQ(r.stop_reason, EDGELLM_STOP_CANCELLED);
    EXPECT_EQ(three.tokens.size(), 3u);
    EXPECT_EQ(three.final_calls, 0);

    gs.n_stop = 1;
    gs.stop = nullptr;
    EXPECT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &gs, &r), EDGELLM_ERR_INVALID_ARGUMENT);
}

TEST(CApi, KeepKvReusesTheHistoryUntilEvalChangesIt) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    context_ptr ctx = make_context(m.get());
    // Reuse is whole KV blocks (16 positions, the prefix cache): a prompt longer than one block.
    auto prompt = tokenize(m.get(), "Once upon a time there was a little girl named Lily who loved to play in the park "
                                    "with her friends every day");
    ASSERT_GT(prompt.size(), 16u);
    collected first;
    edgellm_generate_params g = greedy(8, &first);
    g.keep_kv = true;
    g.ignore_eos = true;
    edgellm_generate_result r{};
    ASSERT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, &r), EDGELLM_OK);
    EXPECT_EQ(r.n_cached, 0);
    // The next turn re-sends the history: its prompt part is reused.
    std::vector<edgellm_token> turn2 = prompt;
    turn2.insert(turn2.end(), first.tokens.begin(), first.tokens.end());
    const auto more = tokenize(m.get(), " The end.", false);
    turn2.insert(turn2.end(), more.begin(), more.end());
    collected second;
    g.user_data = &second;
    ASSERT_EQ(edgellm_generate(ctx.get(), turn2.data(), turn2.size(), &g, &r), EDGELLM_OK);
    EXPECT_GE(r.n_cached, 16);
    EXPECT_EQ(r.n_cached % 16, 0);
    EXPECT_LE(r.n_cached, static_cast<int64_t>(prompt.size() + first.tokens.size()));
    // eval rewrites the slot's KV: the same request must give the same tokens (what it may still
    // reuse are cached blocks whose tokens it matches, never the overwritten slot).
    ASSERT_EQ(edgellm_kv_truncate(ctx.get(), 0), EDGELLM_OK);
    ASSERT_EQ(edgellm_eval(ctx.get(), more.data(), more.size(), false), EDGELLM_OK);
    collected third;
    g.user_data = &third;
    ASSERT_EQ(edgellm_generate(ctx.get(), turn2.data(), turn2.size(), &g, &r), EDGELLM_OK);
    EXPECT_EQ(r.n_cached % 16, 0);
    EXPECT_EQ(third.tokens, second.tokens);
}

TEST(CApi, GenerationErrors) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    context_ptr ctx = make_context(m.get(), 32);
    collected c;
    edgellm_generate_params g = greedy(4, &c);
    const auto prompt = tokenize(m.get(), "Once upon a time");
    EXPECT_EQ(edgellm_generate(nullptr, prompt.data(), prompt.size(), &g, nullptr), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), nullptr, nullptr), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(edgellm_generate(ctx.get(), prompt.data(), 0, &g, nullptr), EDGELLM_ERR_USAGE);
    EXPECT_NE(std::string(edgellm_last_error()).find("empty"), std::string::npos);
    std::vector<edgellm_token> long_prompt(40, prompt[1]);
    EXPECT_EQ(edgellm_generate(ctx.get(), long_prompt.data(), long_prompt.size(), &g, nullptr), EDGELLM_ERR_USAGE);
    const edgellm_token bad[] = {1, 9999};
    EXPECT_EQ(edgellm_generate(ctx.get(), bad, 2, &g, nullptr), EDGELLM_ERR_USAGE);
    g.sampling.top_p = 2.5f;
    EXPECT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, nullptr), EDGELLM_ERR_USAGE);
    g = greedy(4, &c);
    g.sampling.grammar = "root ::= (\"unclosed";
    EXPECT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, nullptr), EDGELLM_ERR_USAGE);
    g.sampling.grammar = nullptr;
    g.sampling.json_schema = "{not json";
    EXPECT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, nullptr), EDGELLM_ERR_USAGE);
    EXPECT_NE(std::string(edgellm_last_error()).find("json_schema"), std::string::npos);

    edgellm_context_params p = edgellm_context_default_params();
    p.n_ctx = 1 << 30;
    edgellm_context* c2 = nullptr;
    EXPECT_EQ(edgellm_context_create(m.get(), &p, &c2), EDGELLM_ERR_USAGE);
    EXPECT_NE(std::string(edgellm_last_error()).find("exceeds"), std::string::npos);
    p = edgellm_context_default_params();
    const int bad_enum = 42;  // what a C caller can store in an enum field
    static_assert(sizeof bad_enum == sizeof p.kv_type);
    std::memcpy(&p.kv_type, &bad_enum, sizeof bad_enum);
    EXPECT_EQ(edgellm_context_create(m.get(), &p, &c2), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(c2, nullptr);
    EXPECT_NE(std::string(edgellm_last_error()).find("42"), std::string::npos);
    p = edgellm_context_default_params();
    std::memcpy(&p.flash_attn, &bad_enum, sizeof bad_enum);
    EXPECT_EQ(edgellm_context_create(m.get(), &p, &c2), EDGELLM_ERR_INVALID_ARGUMENT);
}

TEST(CApi, GrammarConstrainsTheOutput) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    context_ptr ctx = make_context(m.get());
    const auto prompt = tokenize(m.get(), "Once upon a time");
    for (uint64_t seed : {1u, 2u, 3u}) {
        collected c;
        edgellm_generate_params g = greedy(16, &c);
        g.sampling.temperature = 1.0f;
        g.sampling.seed = seed;
        g.sampling.grammar = "root ::= \"yes\" | \"no\"";
        edgellm_generate_result r{};
        ASSERT_EQ(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &g, &r), EDGELLM_OK) << edgellm_last_error();
        EXPECT_TRUE(c.text == "yes" || c.text == "no") << c.text;
    }
}

TEST(CApi, GpuLayersWithoutAGpuAreRefusedWithTheReason) {
    char why[256];
    size_t n = 0;
    ASSERT_EQ(edgellm_gpu_offload_unavailable_reason(why, sizeof why, &n), EDGELLM_OK);
    if (n == 0) GTEST_SKIP() << "a GPU can take layers here";
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    edgellm_context_params p = edgellm_context_default_params();
    p.n_gpu_layers = 100;
    edgellm_context* c = nullptr;
    EXPECT_EQ(edgellm_context_create(m.get(), &p, &c), EDGELLM_ERR_USAGE);
    EXPECT_NE(std::string(edgellm_last_error()).find(std::string(why, n)), std::string::npos) << edgellm_last_error();
}

TEST(CApi, DeviceInfoJson) {
    std::string buf(1 << 16, '\0');
    size_t n = 0;
    ASSERT_EQ(edgellm_device_info_json(nullptr, 0, buf.data(), buf.size(), &n), EDGELLM_OK) << edgellm_last_error();
    buf.resize(n);
    EXPECT_NE(buf.find("\"device\""), std::string::npos);
    EXPECT_NE(buf.find("\"capabilities\""), std::string::npos);
    EXPECT_EQ(edgellm_device_info_json("/nonexistent.gguf", 0, buf.data(), buf.size(), &n), EDGELLM_ERR_MODEL);
}

}  // namespace

TEST(CApi, EmbedDecoderVectorsAndErrors) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_ptr m = load(path);
    edgellm_model_info info{};
    ASSERT_EQ(edgellm_model_get_info(m.get(), &info), EDGELLM_OK);
    EXPECT_FALSE(info.is_encoder);
    const char* texts[] = {"Once upon a time", "The cat sat on the mat and looked at the bird"};
    edgellm_embed_params p = edgellm_embed_default_params();
    p.n_threads = 1;
    int64_t n_embd = 0;
    // The size query: BUFFER_TOO_SMALL with the vector length.
    ASSERT_EQ(edgellm_embed(m.get(), texts, 2, &p, nullptr, 0, &n_embd), EDGELLM_ERR_BUFFER_TOO_SMALL);
    ASSERT_EQ(n_embd, info.n_embd);
    std::vector<float> both(2 * static_cast<size_t>(n_embd)), one(static_cast<size_t>(n_embd));
    ASSERT_EQ(edgellm_embed(m.get(), texts, 2, &p, both.data(), both.size(), &n_embd), EDGELLM_OK);
    ASSERT_EQ(edgellm_embed(m.get(), texts + 1, 1, &p, one.data(), one.size(), &n_embd), EDGELLM_OK);
    double norm = 0;
    for (int64_t i = 0; i < n_embd; ++i) {
        norm += both[static_cast<size_t>(n_embd + i)] * both[static_cast<size_t>(n_embd + i)];
        // Batched with another input or alone: the same vector.
        EXPECT_NEAR(both[static_cast<size_t>(n_embd + i)], one[static_cast<size_t>(i)], 1e-5) << i;
    }
    EXPECT_NEAR(norm, 1.0, 1e-4);  // L2-normalised by default
    p.normalize = false;
    ASSERT_EQ(edgellm_embed(m.get(), texts + 1, 1, &p, one.data(), one.size(), &n_embd), EDGELLM_OK);
    double raw = 0;
    for (float v : one) raw += double(v) * v;
    EXPECT_GT(std::abs(raw - 1.0), 1e-3);

    p.pooling = 42;
    EXPECT_EQ(edgellm_embed(m.get(), texts, 1, &p, one.data(), one.size(), &n_embd), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(edgellm_last_error()).find("pooling"), std::string::npos);
    p = edgellm_embed_default_params();
    EXPECT_EQ(edgellm_embed(m.get(), nullptr, 1, &p, one.data(), one.size(), &n_embd), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(edgellm_embed(m.get(), texts, 0, &p, one.data(), one.size(), &n_embd), EDGELLM_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(edgellm_embed(nullptr, texts, 1, &p, one.data(), one.size(), &n_embd), EDGELLM_ERR_INVALID_ARGUMENT);
}
