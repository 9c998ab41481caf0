// Ollama backend: REST client for /api/generate and /api/chat (streaming NDJSON), with model
// checks through /api/tags and memory figures from /api/ps.
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "backends/factories.h"
#include "backends/http_client.h"
#include "core/error.h"
#include "core/timing.h"

namespace edgellm::backends {
namespace {
using json = nlohmann::json;

// OLLAMA_HOST may be "host", "host:port", ":port" or a full URL, as the ollama CLI accepts.
std::string ollama_base_url(const backend_settings& s) {
    std::string h = s.base_url;
    if (h.empty()) {
        const char* env = std::getenv("OLLAMA_HOST");
        h = env && *env ? env : "http://localhost:11434";
    }
    if (h.find("://") == std::string::npos) h = "http://" + h;
    auto host_start = h.find("://") + 3;
    auto path_start = h.find('/', host_start);
    std::string host = h.substr(host_start, path_start == std::string::npos ? std::string::npos : path_start - host_start);
    if (host.empty() || host[0] == ':') host = "localhost" + host;
    if (host.find(':') == std::string::npos) host += ":11434";
    if (host.rfind("0.0.0.0", 0) == 0) host = "127.0.0.1" + host.substr(7);
    return h.substr(0, host_start) + host;
}

json options_of(const generation_request& r) {
    json o = {{"num_predict", r.n_predict}, {"temperature", r.temperature}, {"top_k", r.top_k},
              {"top_p", r.top_p},           {"min_p", r.min_p},             {"repeat_penalty", r.repeat_penalty}};
    if (r.seed) o["seed"] = *r.seed;
    if (!r.stop.empty()) o["stop"] = r.stop;
    return o;
}

class ollama_backend final : public backend {
public:
    std::string name() const override { return "ollama"; }
    std::string description() const override { return "Ollama REST API"; }

    availability check_available(const backend_settings& s) const override {
        std::string url = ollama_base_url(s);
        try {
            http_client c(url, std::min(s.connect_timeout_s, 2.0), 5);
            auto r = c.get("/api/version");
            if (r.status != 200) return {false, "Ollama at " + url + " answered " + describe_http_error(r), ""};
            auto j = parse_server_json(r.body, "ollama /api/version");
            return {true, "Ollama " + j.value("version", std::string("?")) + " at " + url, ""};
        } catch (const error& e) {
            return {false, std::string("no Ollama server: ") + e.what(),
                    "install Ollama and run `ollama serve`, or set OLLAMA_HOST / --host"};
        }
    }

    void load(const backend_settings& s) override {
        settings_ = s;
        if (s.model.empty()) throw usage_error("ollama: no model given (use --model-name TAG, e.g. llama3.2:1b)");
        client_ = std::make_unique<http_client>(ollama_base_url(s), s.connect_timeout_s, s.timeout_s);
        auto tags = client_->get("/api/tags");
        if (tags.status != 200) throw error("ollama: /api/tags: " + describe_http_error(tags));
        auto j = parse_server_json(tags.body, "ollama /api/tags");
        bool found = false;
        std::string names;
        if (j.contains("models") && j["models"].is_array()) {
            for (const auto& m : j["models"]) {
                std::string n = m.value("name", m.value("model", std::string()));
                names += (names.empty() ? "" : ", ") + n;
                if (n == s.model || n == s.model + ":latest") found = true;
            }
        }
        if (!found)
            throw error("ollama: model '" + s.model + "' is not on the server at " + client_->base_url() +
                        " (available: " + (names.empty() ? "none" : names) + "); pull it with `ollama pull " +
                        s.model + "`");
        // An empty generate request makes Ollama load the model; its duration is the load time.
        const double t0 = now_ms();
        auto r = client_->post_json("/api/generate", {{"model", s.model}, {"stream", false}});
        if (r.status != 200) throw error("ollama: loading '" + s.model + "': " + describe_http_error(r));
        auto lj = parse_server_json(r.body, "ollama /api/generate");
        load_ms_ = lj.contains("load_duration") && lj["load_duration"].is_number()
                       ? lj["load_duration"].get<double>() / 1e6
                       : now_ms() - t0;
    }

    void unload() override {
        if (client_ && !settings_.model.empty()) {
            try {
                client_->post_json("/api/generate", {{"model", settings_.model}, {"keep_alive", 0}});
            } catch (const error&) {
            }
        }
        client_.reset();
    }

protected:
    void do_generate(const generation_request& req, const std::function<bool(std::string_view)>& emit,
                     generation_result& result) override {
        if (!client_) throw error("ollama: generate called before load");
        json body = {{"model", settings_.model}, {"stream", true}, {"options", options_of(req)}};
        std::string path;
        if (req.chat()) {
            path = "/api/chat";
            body["messages"] = json::array();
            for (const auto& m : req.messages) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
        } else {
            path = "/api/generate";
            body["prompt"] = req.prompt;
        }
        bool done = false;
        std::string stream_error;
        auto r = client_->post_stream_lines(path, body, [&](std::string_view line) {
            if (line.empty()) return true;
            auto j = parse_server_json(line, "ollama " + path);
            if (j.contains("error")) {
                stream_error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
                return false;
            }
            std::string piece = req.chat() ? (j.contains("message") ? j["message"].value("content", std::string()) : "")
                                           : j.value("response", std::string());
            bool keep_going = emit(piece);
            if (j.value("done", false)) {
                done = true;
                auto& s = result.stats;
                result.finish_reason = j.value("done_reason", std::string("stop"));
                if (j.contains("prompt_eval_count")) s.n_prompt_tokens = j["prompt_eval_count"].get<int64_t>();
                if (j.contains("eval_count")) s.n_gen_tokens = j["eval_count"].get<int64_t>();
                if (j.contains("prompt_eval_duration")) s.backend_prompt_ms = j["prompt_eval_duration"].get<double>() / 1e6;
                if (j.contains("eval_duration")) s.backend_decode_ms = j["eval_duration"].get<double>() / 1e6;
                if (j.contains("load_duration")) s.backend_load_ms = j["load_duration"].get<double>() / 1e6;
                return false;
            }
            return keep_going;
        });
        if (r.status != 200) throw error("ollama: " + path + ": " + describe_http_error(r));
        if (!stream_error.empty()) throw error("ollama: server reported an error mid-stream: " + stream_error);
        if (!done && result.finish_reason != "cancelled") {
            if (result.text.empty() && !done) throw error("ollama: stream ended before the final message (server died?)");
            result.finish_reason = "incomplete";
        }
        read_memory(result.stats);
    }

private:
    void read_memory(generation_stats& s) const {
        try {
            auto r = client_->get("/api/ps");
            if (r.status != 200) return;
            auto j = parse_server_json(r.body, "ollama /api/ps");
            for (const auto& m : j.value("models", json::array())) {
                std::string n = m.value("name", m.value("model", std::string()));
                if (n == settings_.model || n == settings_.model + ":latest") {
                    if (m.contains("size")) s.backend_memory_bytes = m["size"].get<uint64_t>();
                    if (m.contains("size_vram")) s.backend_gpu_memory_bytes = m["size_vram"].get<uint64_t>();
                }
            }
        } catch (const std::exception&) {
            // Memory figures are optional; a server without /api/ps still generates.
        }
    }

    backend_settings settings_;
    std::unique_ptr<http_client> client_;
};

}  // namespace

std::unique_ptr<backend> make_ollama_backend() { return std::make_unique<ollama_backend>(); }

}  // namespace edgellm::backends
