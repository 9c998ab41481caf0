// HTTP backends (ollama, openai, llama_cpp via URL) against in-process servers that speak each
// documented protocol, including streaming, server errors, malformed and truncated streams,
// slow servers and refused connections.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "backends/factories.h"
#include "core/error.h"
#include "core/timing.h"

using namespace edgellm;
using namespace edgellm::backends;

namespace {

// Runs an httplib server on a free loopback port for the lifetime of the object.
class test_server {
public:
    httplib::Server svr;
    int port = 0;
    void start() {
        port = svr.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { svr.listen_after_bind(); });
        while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
    ~test_server() {
        svr.stop();
        if (thread_.joinable()) thread_.join();
    }

private:
    std::thread thread_;
};

// Streams `lines` one chunk each; when `die_after` >= 0, the connection is dropped after that many.
void stream_lines(httplib::Response& res, std::vector<std::string> lines, const char* content_type,
                  int die_after = -1) {
    auto shared = std::make_shared<std::vector<std::string>>(std::move(lines));
    res.set_chunked_content_provider(content_type, [shared, die_after](size_t, httplib::DataSink& sink) {
        int i = 0;
        for (const auto& l : *shared) {
            if (die_after >= 0 && i++ >= die_after) return false;  // abort: connection closes mid-stream
            sink.write(l.data(), l.size());
        }
        sink.done();
        return true;
    });
}

std::string ndjson(const nlohmann::json& j) { return j.dump() + "\n"; }
std::string sse(const nlohmann::json& j) { return "data: " + j.dump() + "\n\n"; }

void add_ollama_routes(test_server& s, int die_after = -1, bool malformed = false) {
    s.svr.Get("/api/version", [](const httplib::Request&, httplib::Response& r) {
        r.set_content(R"({"version":"0.9.0"})", "application/json");
    });
    s.svr.Get("/api/tags", [](const httplib::Request&, httplib::Response& r) {
        r.set_content(R"({"models":[{"name":"tiny:latest","model":"tiny:latest","size":1000}]})", "application/json");
    });
    s.svr.Get("/api/ps", [](const httplib::Request&, httplib::Response& r) {
        r.set_content(R"({"models":[{"name":"tiny:latest","size":123456,"size_vram":654}]})", "application/json");
    });
    auto gen = [die_after, malformed](const httplib::Request& req, httplib::Response& r) {
        auto body = nlohmann::json::parse(req.body);
        if (!body.contains("prompt") && !body.contains("messages")) {  // load request
            r.set_content(R"({"done":true,"load_duration":250000000})", "application/json");
            return;
        }
        bool chat = body.contains("messages");
        auto piece = [&](const std::string& t) {
            return chat ? ndjson({{"message", {{"role", "assistant"}, {"content", t}}}, {"done", false}})
                        : ndjson({{"response", t}, {"done", false}});
        };
        std::vector<std::string> lines = {piece("Hello"), piece(", "),
                                          malformed ? std::string("{not json\n") : piece("world")};
        lines.push_back(ndjson({{"done", true}, {"done_reason", "stop"}, {"prompt_eval_count", 7},
                                {"prompt_eval_duration", 70000000}, {"eval_count", 3},
                                {"eval_duration", 30000000}, {"load_duration", 1000000}}));
        stream_lines(r, lines, "application/x-ndjson", die_after);
    };
    s.svr.Post("/api/generate", gen);
    s.svr.Post("/api/chat", gen);
}

backend_settings settings_for(const test_server& s, const std::string& model) {
    backend_settings st;
    st.base_url = s.url();
    st.model = model;
    st.timeout_s = 5;
    st.connect_timeout_s = 2;
    return st;
}

// Speeds by edgellm's clock (backend::generate): prefill = prompt tokens / TTFT, decode =
// (tokens - 1) / (last piece - first piece), or none when the pieces came at the same instant.
void expect_own_clock(const generation_stats& st) {
    ASSERT_GT(st.ttft_ms, 0.0);
    EXPECT_NEAR(st.prefill_tokens_per_s, st.n_prompt_tokens * 1000.0 / st.ttft_ms, 1e-6);
    if (st.last_piece_ms > st.ttft_ms)
        EXPECT_NEAR(st.decode_tokens_per_s, (st.n_gen_tokens - 1) * 1000.0 / (st.last_piece_ms - st.ttft_ms), 1e-6);
    else
        EXPECT_EQ(st.decode_tokens_per_s, 0.0);
}

}  // namespace

TEST(OllamaBackend, StreamsGenerateAndReadsServerTimings) {
    test_server s;
    add_ollama_routes(s);
    s.start();
    auto b = make_ollama_backend();
    EXPECT_TRUE(b->check_available(settings_for(s, "")).available);
    b->load(settings_for(s, "tiny"));
    EXPECT_NEAR(b->load_ms(), 250.0, 1e-6);
    std::vector<std::string> pieces;
    generation_request req;
    req.prompt = "Hi";
    auto r = b->generate(req, [&](std::string_view p) {
        pieces.emplace_back(p);
        return true;
    });
    EXPECT_EQ(r.text, "Hello, world");
    EXPECT_EQ(pieces.size(), 3u);
    EXPECT_EQ(r.finish_reason, "stop");
    EXPECT_EQ(r.stats.n_prompt_tokens, 7);
    EXPECT_EQ(r.stats.n_gen_tokens, 3);
    // The server's own figures are the extra server_* ones; the speeds are edgellm's clock.
    ASSERT_TRUE(r.stats.server_prefill_tokens_per_s);
    EXPECT_NEAR(*r.stats.server_prefill_tokens_per_s, 100.0, 1e-9);  // 7 tokens / 70 ms
    ASSERT_TRUE(r.stats.server_decode_tokens_per_s);
    EXPECT_NEAR(*r.stats.server_decode_tokens_per_s, 100.0, 1e-9);   // 3 tokens / 30 ms
    expect_own_clock(r.stats);
    EXPECT_EQ(r.stats.inter_token_ms.size(), 2u);
    EXPECT_GE(r.stats.total_ms, r.stats.ttft_ms);
    ASSERT_TRUE(r.stats.backend_memory_bytes.has_value());
    EXPECT_EQ(*r.stats.backend_memory_bytes, 123456u);
    EXPECT_EQ(*r.stats.backend_gpu_memory_bytes, 654u);
}

TEST(OllamaBackend, ChatUsesApiChat) {
    test_server s;
    add_ollama_routes(s);
    s.start();
    auto b = make_ollama_backend();
    b->load(settings_for(s, "tiny:latest"));
    generation_request req;
    req.messages = {{"user", "Hi"}};
    EXPECT_EQ(b->generate(req, nullptr).text, "Hello, world");
}

TEST(OllamaBackend, MissingModelNamesTheAvailableOnes) {
    test_server s;
    add_ollama_routes(s);
    s.start();
    auto b = make_ollama_backend();
    try {
        b->load(settings_for(s, "llama2:7b-chat"));
        FAIL() << "expected an error";
    } catch (const error& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("llama2:7b-chat"), std::string::npos) << m;
        EXPECT_NE(m.find("tiny:latest"), std::string::npos) << m;
        EXPECT_NE(m.find("ollama pull"), std::string::npos) << m;
    }
}

TEST(OllamaBackend, MalformedStreamIsAClearError) {
    test_server s;
    add_ollama_routes(s, -1, /*malformed=*/true);
    s.start();
    auto b = make_ollama_backend();
    b->load(settings_for(s, "tiny"));
    generation_request req;
    req.prompt = "Hi";
    try {
        b->generate(req, nullptr);
        FAIL() << "expected an error";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos) << e.what();
    }
}

TEST(OllamaBackend, ServerDyingMidStreamIsReported) {
    test_server s;
    add_ollama_routes(s, /*die_after=*/2);
    s.start();
    auto b = make_ollama_backend();
    b->load(settings_for(s, "tiny"));
    generation_request req;
    req.prompt = "Hi";
    // Two pieces arrived, then the connection dropped before the final message.
    try {
        auto r = b->generate(req, nullptr);
        EXPECT_EQ(r.finish_reason, "incomplete");
        EXPECT_EQ(r.text, "Hello, ");
    } catch (const error& e) {
        SUCCEED() << "reported as error: " << e.what();
    }
}

TEST(OllamaBackend, CallbackCancels) {
    test_server s;
    add_ollama_routes(s);
    s.start();
    auto b = make_ollama_backend();
    b->load(settings_for(s, "tiny"));
    generation_request req;
    req.prompt = "Hi";
    auto r = b->generate(req, [](std::string_view) { return false; });
    EXPECT_EQ(r.finish_reason, "cancelled");
    EXPECT_EQ(r.text, "Hello");
}

TEST(HttpBackends, ConnectionRefusedIsAClearErrorNotAHang) {
    test_server s;  // bound then stopped: nothing listens on the port afterwards
    s.start();
    std::string url = s.url();
    s.svr.stop();
    for (const char* name : {"ollama", "openai", "llama_cpp"}) {
        std::unique_ptr<backend> b = std::string(name) == "ollama" ? make_ollama_backend()
                                     : std::string(name) == "openai" ? make_openai_backend("")
                                                                       : make_llama_cpp_backend();
        backend_settings st;
        st.base_url = url;
        st.model = "m";
        st.timeout_s = 2;
        st.connect_timeout_s = 1;
        EXPECT_FALSE(b->check_available(st).available) << name;
        const double t0 = now_ms();
        EXPECT_THROW(b->load(st), error) << name;
        EXPECT_LT(now_ms() - t0, 5000) << name;
    }
}

TEST(HttpBackends, SlowServerTimesOut) {
    test_server s;
    s.svr.Get("/api/tags", [](const httplib::Request&, httplib::Response& r) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        r.set_content(R"({"models":[]})", "application/json");
    });
    s.start();
    auto b = make_ollama_backend();
    auto st = settings_for(s, "tiny");
    st.timeout_s = 1;
    const double t0 = now_ms();
    try {
        b->load(st);
        FAIL() << "expected a timeout";
    } catch (const error& e) {
        EXPECT_LT(now_ms() - t0, 2400);
        EXPECT_NE(std::string(e.what()).find("/api/tags"), std::string::npos) << e.what();
    }
}

namespace {
void add_openai_routes(test_server& s, bool fail_with_500 = false) {
    s.svr.Get("/v1/models", [](const httplib::Request&, httplib::Response& r) {
        r.set_content(R"({"object":"list","data":[{"id":"tiny-model","object":"model"}]})", "application/json");
    });
    auto handler = [fail_with_500](const httplib::Request& req, httplib::Response& r) {
        if (fail_with_500) {
            r.status = 500;
            r.set_content(R"({"error":{"message":"CUDA out of memory","type":"server_error"}})", "application/json");
            return;
        }
        auto body = nlohmann::json::parse(req.body);
        bool chat = body.contains("messages");
        auto chunk = [&](const std::string& t) {
            return chat ? sse({{"choices", {{{"index", 0}, {"delta", {{"content", t}}}, {"finish_reason", nullptr}}}}})
                        : sse({{"choices", {{{"index", 0}, {"text", t}, {"finish_reason", nullptr}}}}});
        };
        std::vector<std::string> lines = {": keep-alive comment\n\n", chunk("A"), chunk("B"), chunk("C")};
        lines.push_back(sse({{"choices", {{{"index", 0}, {"text", ""}, {"finish_reason", "length"}}}}}));
        if (body.contains("stream_options"))
            lines.push_back(sse({{"choices", nlohmann::json::array()},
                                 {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}}}}));
        lines.push_back("data: [DONE]\n\n");
        stream_lines(r, lines, "text/event-stream");
    };
    s.svr.Post("/v1/completions", handler);
    s.svr.Post("/v1/chat/completions", handler);
}
}  // namespace

TEST(OpenAIBackend, StreamsCompletionsAndReadsUsage) {
    test_server s;
    add_openai_routes(s);
    s.start();
    for (const char* preset : {"", "vllm"}) {
        auto b = make_openai_backend(preset);
        auto st = settings_for(s, "tiny-model");
        st.base_url = s.url() + "/v1";
        b->load(st);
        generation_request req;
        req.prompt = "x";
        auto r = b->generate(req, nullptr);
        EXPECT_EQ(r.text, "ABC") << preset;
        EXPECT_EQ(r.finish_reason, "length");
        EXPECT_EQ(r.stats.n_prompt_tokens, 5);
        EXPECT_EQ(r.stats.n_gen_tokens, 3);
        req.prompt.clear();
        req.messages = {{"system", "be brief"}, {"user", "hi"}};
        EXPECT_EQ(b->generate(req, nullptr).text, "ABC") << preset;
    }
}

TEST(OpenAIBackend, UnknownModelListsServedOnes) {
    test_server s;
    add_openai_routes(s);
    s.start();
    auto b = make_openai_backend("");
    auto st = settings_for(s, "gpt-9");
    st.base_url = s.url() + "/v1";
    try {
        b->load(st);
        FAIL();
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("tiny-model"), std::string::npos) << e.what();
    }
}

TEST(OpenAIBackend, ServerErrorMessageIsPassedOn) {
    test_server s;
    add_openai_routes(s, /*fail_with_500=*/true);
    s.start();
    auto b = make_openai_backend("");
    auto st = settings_for(s, "tiny-model");
    st.base_url = s.url() + "/v1";
    b->load(st);
    generation_request req;
    req.prompt = "x";
    try {
        b->generate(req, nullptr);
        FAIL();
    } catch (const error& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("HTTP 500"), std::string::npos) << m;
        EXPECT_NE(m.find("CUDA out of memory"), std::string::npos) << m;
    }
}

TEST(LlamaCppBackend, ConnectsToRunningServerAndReadsTimings) {
    test_server s;
    std::atomic<int> health_calls{0};
    s.svr.Get("/health", [&](const httplib::Request&, httplib::Response& r) {
        // The first probe sees a model still loading (503), as llama-server reports it.
        if (health_calls++ == 0) {
            r.status = 503;
            r.set_content(R"({"error":{"message":"Loading model"}})", "application/json");
        } else {
            r.set_content(R"({"status":"ok"})", "application/json");
        }
    });
    s.svr.Post("/completion", [](const httplib::Request& req, httplib::Response& r) {
        auto body = nlohmann::json::parse(req.body);
        EXPECT_EQ(body["cache_prompt"], false);
        stream_lines(r,
                     {sse({{"content", "one"}, {"stop", false}}), sse({{"content", " two"}, {"stop", false}}),
                      sse({{"content", ""},
                           {"stop", true},
                           {"stopped_limit", true},
                           {"timings", {{"prompt_n", 4}, {"prompt_ms", 8.0}, {"predicted_n", 2}, {"predicted_ms", 4.0}}}})},
                     "text/event-stream");
    });
    s.start();
    auto b = make_llama_cpp_backend();
    b->load(settings_for(s, ""));
    EXPECT_GE(health_calls.load(), 2);
    generation_request req;
    req.prompt = "count";
    auto r = b->generate(req, nullptr);
    EXPECT_EQ(r.text, "one two");
    EXPECT_EQ(r.finish_reason, "length");
    ASSERT_TRUE(r.stats.server_prefill_tokens_per_s);
    EXPECT_NEAR(*r.stats.server_prefill_tokens_per_s, 500.0, 1e-9);  // 4 tokens / 8 ms
    ASSERT_TRUE(r.stats.server_decode_tokens_per_s);
    EXPECT_NEAR(*r.stats.server_decode_tokens_per_s, 500.0, 1e-9);   // 2 tokens / 4 ms
    EXPECT_EQ(r.stats.n_gen_tokens, 2);
    expect_own_clock(r.stats);
}

TEST(LlamaCppBackend, ChatGoesToChatCompletionsWithUsageAndTimings) {
    test_server s;
    s.svr.Get("/health", [](const httplib::Request&, httplib::Response& r) {
        r.set_content(R"({"status":"ok"})", "application/json");
    });
    s.svr.Post("/v1/chat/completions", [](const httplib::Request& req, httplib::Response& r) {
        auto body = nlohmann::json::parse(req.body);
        EXPECT_EQ(body["messages"][0]["content"], "hi");
        EXPECT_EQ(body["max_tokens"], 8);
        EXPECT_EQ(body["stream_options"]["include_usage"], true);
        auto chunk = [](const std::string& text) {
            return sse({{"choices", {{{"index", 0}, {"finish_reason", nullptr}, {"delta", {{"content", text}}}}}}});
        };
        stream_lines(r,
                     {chunk("Hel"), chunk("lo"),
                      sse({{"choices", {{{"index", 0}, {"finish_reason", "stop"}, {"delta", nlohmann::json::object()}}}},
                           {"timings", {{"prompt_n", 9}, {"prompt_ms", 3.0}, {"predicted_n", 2}, {"predicted_ms", 2.0},
                                        {"predicted_per_second", 500.0}}}}),
                      sse({{"choices", nlohmann::json::array()},
                           {"usage", {{"prompt_tokens", 9}, {"completion_tokens", 2}, {"total_tokens", 11}}}}),
                      "data: [DONE]\n\n"},
                     "text/event-stream");
    });
    s.start();
    auto b = make_llama_cpp_backend();
    b->load(settings_for(s, ""));
    generation_request req;
    req.messages = {{"user", "hi"}};
    req.n_predict = 8;
    auto r = b->generate(req, nullptr);
    EXPECT_EQ(r.text, "Hello");
    EXPECT_EQ(r.finish_reason, "stop");
    EXPECT_EQ(r.stats.n_prompt_tokens, 9);
    EXPECT_EQ(r.stats.n_gen_tokens, 2);
    EXPECT_FALSE(r.stats.n_gen_tokens_estimated);
    ASSERT_TRUE(r.stats.server_decode_tokens_per_s);
    EXPECT_DOUBLE_EQ(*r.stats.server_decode_tokens_per_s, 500.0);
    expect_own_clock(r.stats);
}

TEST(LlamaCppBackend, MissingBinarySuggestsNative) {
    auto b = make_llama_cpp_backend();
    backend_settings st;
    st.extra["binary"] = "/nonexistent/llama-server";
    auto a = b->check_available(st);
    EXPECT_FALSE(a.available);
    EXPECT_NE(a.hint.find("--backend native"), std::string::npos) << a.hint;
}
