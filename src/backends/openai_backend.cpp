// OpenAI-compatible backend (vLLM, TensorRT-LLM, TGI, SGLang, LM Studio, llama-server ...):
// /v1/completions and /v1/chat/completions with SSE streaming and usage reporting.
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "backends/factories.h"
#include "backends/http_client.h"
#include "backends/llama_server_json.h"
#include "core/error.h"
#include "core/timing.h"

namespace edgellm::backends {
namespace {
using json = nlohmann::json;

struct preset {
    std::string name;
    std::string default_url;
    bool sampling_extras;  // accepts top_k / min_p / repetition_penalty beside the OpenAI fields
    bool stream_usage;     // accepts stream_options.include_usage
    std::string hint;
};

const preset& find_preset(const std::string& name) {
    static const std::vector<preset> presets = {
        {"", "http://localhost:8000/v1", false, true, "start any OpenAI-compatible server and pass --url"},
        {"vllm", "http://localhost:8000/v1", true, true, "pip install vllm; vllm serve MODEL"},
        {"tensorrt_llm", "http://localhost:8000/v1", true, true, "trtllm-serve MODEL (TensorRT-LLM)"},
        {"tgi", "http://localhost:8080/v1", false, false, "run text-generation-launcher (Hugging Face TGI)"},
        {"sglang", "http://localhost:30000/v1", true, true, "python -m sglang.launch_server --model-path MODEL"},
        {"lmstudio", "http://localhost:1234/v1", true, true, "start the LM Studio server (lms server start)"},
    };
    for (const auto& p : presets)
        if (p.name == name) return p;
    return presets[0];
}

class openai_backend final : public backend {
public:
    explicit openai_backend(const std::string& preset_name) : preset_(find_preset(preset_name)) {}
    std::string name() const override { return preset_.name.empty() ? "openai" : preset_.name; }
    std::string description() const override { return "OpenAI-compatible server"; }

    availability check_available(const backend_settings& s) const override {
        std::string url = base_url(s);
        try {
            http_client c(url, std::min(s.connect_timeout_s, 2.0), 5, auth_headers());
            auto r = c.get("/models");
            if (r.status != 200) return {false, "server at " + url + " answered " + describe_http_error(r), preset_.hint};
            return {true, "server at " + url, ""};
        } catch (const error& e) {
            return {false, std::string("no server: ") + e.what(), preset_.hint};
        }
    }

    void load(const backend_settings& s) override {
        settings_ = s;
        const double t0 = now_ms();
        client_ = std::make_unique<http_client>(base_url(s), s.connect_timeout_s, s.timeout_s, auth_headers());
        auto r = client_->get("/models");
        if (r.status != 200) throw error(name() + ": " + client_->base_url() + "/models: " + describe_http_error(r));
        auto j = parse_server_json(r.body, name() + " /models");
        std::string names;
        bool found = false;
        for (const auto& m : j.value("data", json::array())) {
            std::string id = m.value("id", std::string());
            names += (names.empty() ? "" : ", ") + id;
            if (id == s.model) found = true;
            if (model_.empty()) model_ = id;
        }
        if (!s.model.empty()) {
            // Some servers (TGI, llama.cpp) serve one model under any name; only insist when a list exists.
            if (!found && !names.empty() && preset_.name != "tgi")
                throw error(name() + ": model '" + s.model + "' is not served at " + client_->base_url() +
                            " (served: " + names + ")");
            model_ = s.model;
        }
        if (model_.empty()) throw error(name() + ": the server lists no models; pass --model-name");
        load_ms_ = now_ms() - t0;
    }

    void unload() override { client_.reset(); }

protected:
    void do_generate(const generation_request& req, const std::function<bool(std::string_view)>& emit,
                     generation_result& result) override {
        if (!client_) throw error(name() + ": generate called before load");
        json body = {{"model", model_}, {"stream", true}, {"max_tokens", req.n_predict},
                     {"temperature", req.temperature}, {"top_p", req.top_p}};
        // Token counts while streaming come only from a final `usage` chunk, which servers send
        // when asked through stream_options.include_usage (OpenAI, vLLM, llama-server). Some never
        // send it: llama-cpp-python's server (0.3.x) ignores stream_options (its request models
        // drop unknown fields) and puts `usage` only in non-streamed responses. Then
        // backend::generate counts the streamed pieces and marks n_gen_tokens as an estimate:
        // that server yields about one piece per token but merges tokens that end mid-character
        // or could start a stop string, so the count can be low, never high. The prompt size
        // stays unknown (prefill speed "not measured"): asking /extras/tokenize would add a
        // request inside the timed run.
        if (preset_.stream_usage) body["stream_options"] = {{"include_usage", true}};
        if (preset_.sampling_extras) {
            body["top_k"] = req.top_k;
            body["min_p"] = req.min_p;
            body["repetition_penalty"] = req.repeat_penalty;
        }
        if (req.seed) body["seed"] = *req.seed;
        if (!req.stop.empty()) body["stop"] = req.stop;
        std::string path;
        if (req.chat()) {
            path = "/chat/completions";
            body["messages"] = json::array();
            for (const auto& m : req.messages) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
        } else {
            path = "/completions";
            body["prompt"] = req.prompt;
        }
        bool done = false;
        std::string stream_error;
        auto r = client_->post_stream_lines(path, body, [&](std::string_view line) {
            if (line.rfind("data:", 0) != 0) return true;  // SSE comments, event names, blank lines
            std::string_view data = line.substr(5);
            while (!data.empty() && data.front() == ' ') data.remove_prefix(1);
            if (data == "[DONE]") {
                done = true;
                return false;
            }
            auto j = parse_server_json(data, name() + " " + path);
            if (j.contains("error")) {
                const auto& e = j["error"];
                stream_error = e.is_object() ? e.value("message", e.dump()) : e.dump();
                return false;
            }
            bool keep_going = true;
            if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
                const auto& c = j["choices"][0];
                std::string piece;
                if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
                    c["delta"]["content"].is_string())
                    piece = c["delta"]["content"].get<std::string>();
                else if (c.contains("text") && c["text"].is_string())
                    piece = c["text"].get<std::string>();
                keep_going = emit(piece);
                if (c.contains("finish_reason") && c["finish_reason"].is_string())
                    result.finish_reason = c["finish_reason"].get<std::string>();
            }
            if (j.contains("usage") && j["usage"].is_object()) {
                const auto& u = j["usage"];
                if (u.contains("prompt_tokens")) result.stats.n_prompt_tokens = u["prompt_tokens"].get<int64_t>();
                if (u.contains("completion_tokens")) result.stats.n_gen_tokens = u["completion_tokens"].get<int64_t>();
            }
            // llama-server adds its own timings to the last chunk (read as each version spells them).
            if (j.contains("timings") && j["timings"].is_object()) {
                const auto t = parse_llama_server_timings(j["timings"]);
                if (t.prompt_ms) result.stats.backend_prompt_ms = *t.prompt_ms;
                if (t.predicted_ms) result.stats.backend_decode_ms = *t.predicted_ms;
                result.stats.server_prefill_tokens_per_s = server_prefill_tokens_per_s(t);
                result.stats.server_decode_tokens_per_s = server_decode_tokens_per_s(t);
            }
            return keep_going;
        });
        if (r.status != 200) throw error(name() + ": " + path + ": " + describe_http_error(r));
        if (!stream_error.empty()) throw error(name() + ": server reported an error mid-stream: " + stream_error);
        if (!done && result.finish_reason.empty() && result.text.empty())
            throw error(name() + ": stream ended before any data (server died?)");
        if (!done && result.finish_reason.empty()) result.finish_reason = "incomplete";
    }

private:
    std::string base_url(const backend_settings& s) const {
        if (!s.base_url.empty()) return s.base_url;
        if (preset_.name.empty()) {
            const char* env = std::getenv("OPENAI_BASE_URL");
            if (env && *env) return env;
        }
        return preset_.default_url;
    }
    static std::map<std::string, std::string> auth_headers() {
        const char* key = std::getenv("EDGELLM_API_KEY");
        if (!key || !*key) key = std::getenv("OPENAI_API_KEY");
        if (key && *key) return {{"Authorization", std::string("Bearer ") + key}};
        return {};
    }

    const preset& preset_;
    backend_settings settings_;
    std::string model_;
    std::unique_ptr<http_client> client_;
};

}  // namespace

std::unique_ptr<backend> make_openai_backend(const std::string& preset) {
    return std::make_unique<openai_backend>(preset);
}

}  // namespace edgellm::backends
