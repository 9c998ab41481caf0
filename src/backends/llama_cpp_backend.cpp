// llama.cpp backend through llama-server: spawns the server from a binary (or connects to a
// running URL), waits for /health, and streams /completion (prompts) or /v1/chat/completions
// (chat) with cache_prompt off; the server's own `timings` are kept as an extra.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "backends/factories.h"
#include "backends/http_client.h"
#include "backends/llama_server_json.h"
#include "core/error.h"
#include "core/process.h"
#include "core/timing.h"
#include "store/store.h"

namespace edgellm::backends {
namespace {
using json = nlohmann::json;

int free_local_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw error("llama_cpp: cannot create a socket to pick a port");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw error("llama_cpp: cannot pick a free local port");
    }
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

std::string tail_of_file(const std::string& path, size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
    return s;
}

class llama_cpp_backend final : public backend {
public:
    std::string name() const override { return "llama_cpp"; }
    std::string description() const override { return "llama.cpp via llama-server"; }

    availability check_available(const backend_settings& s) const override {
        if (!s.base_url.empty()) {
            try {
                http_client c(s.base_url, std::min(s.connect_timeout_s, 2.0), 5);
                auto r = c.get("/health");
                if (r.status == 200) return {true, "llama-server at " + s.base_url, ""};
                return {false, "llama-server at " + s.base_url + " answered " + describe_http_error(r), ""};
            } catch (const error& e) {
                return {false, e.what(), "start llama-server or drop --url to let edgellm spawn it"};
            }
        }
        if (auto bin = server_binary(s)) return {true, "llama-server at " + *bin, ""};
        return {false, "llama-server not found ($EDGELLM_LLAMA_SERVER, PATH, ~/.cache/edgellm/llama.cpp-0.3.36/bin)",
                "run scripts/build-llama-cpp.sh, or build llama.cpp (cmake --build . --target llama-server) and pass --llama-server PATH, "
                "or use --backend native (edgellm's own engine runs the same GGUF files)"};
    }

    void load(const backend_settings& s) override {
        settings_ = s;
        const double t0 = now_ms();
        std::string url = s.base_url;
        if (url.empty()) {
            auto bin = server_binary(s);
            if (!bin) throw error("llama_cpp: " + check_available(s).reason + "; " + check_available(s).hint);
            if (s.model.empty()) throw usage_error("llama_cpp: no model given (use -m / --model-path MODEL.gguf)");
            std::string model = s.model;  // a path, or a stored model's name (`edgellm pull`)
            if (!std::filesystem::exists(model)) {
                try {
                    model = store::resolve_model(model);
                } catch (const error&) {
                    throw usage_error("llama_cpp: model file '" + s.model +
                                      "' does not exist, nor is it a stored model's name (`edgellm models`)");
                }
            }
            int port = free_local_port();
            std::vector<std::string> argv = {*bin, "-m", model, "--host", "127.0.0.1", "--port", std::to_string(port)};
            if (s.n_ctx > 0) argv.insert(argv.end(), {"-c", std::to_string(s.n_ctx)});
            if (s.n_threads > 0) argv.insert(argv.end(), {"-t", std::to_string(s.n_threads)});
            if (s.n_batch > 0) argv.insert(argv.end(), {"-b", std::to_string(s.n_batch)});
            if (s.n_gpu_layers >= 0) argv.insert(argv.end(), {"-ngl", std::to_string(s.n_gpu_layers)});
            log_path_ = (std::filesystem::temp_directory_path() / ("edgellm-llama-server-" + std::to_string(port) + ".log")).string();
            process_options po;
            po.stderr_path = log_path_;
            server_ = child_process(argv, po);
            url = "http://127.0.0.1:" + std::to_string(port);
        }
        client_ = std::make_unique<http_client>(url, s.connect_timeout_s, s.timeout_s);
        wait_healthy(url, t0);
        load_ms_ = now_ms() - t0;
    }

    std::optional<int> process_id() const override {
        if (server_.pid() > 0) return server_.pid();
        return std::nullopt;
    }

    void unload() override {
        client_.reset();
        server_.terminate();
    }

    ~llama_cpp_backend() override { unload(); }

protected:
    // Prompts go to /completion, chat requests to /v1/chat/completions (the server applies the
    // model's template); both stream. edgellm times the stream itself (backend::generate); the
    // server's `timings` become the extra server_* figures.
    void do_generate(const generation_request& req, const std::function<bool(std::string_view)>& emit,
                     generation_result& result) override {
        if (!client_) throw error("llama_cpp: generate called before load");
        const bool chat = req.chat();
        json body = {{"stream", true},           {"cache_prompt", false},      {"temperature", req.temperature},
                     {"top_k", req.top_k},       {"top_p", req.top_p},         {"min_p", req.min_p},
                     {"repeat_penalty", req.repeat_penalty}};
        std::string path;
        if (chat) {
            path = "/v1/chat/completions";
            body["max_tokens"] = req.n_predict;
            body["stream_options"] = {{"include_usage", true}};
            body["messages"] = json::array();
            for (const auto& m : req.messages) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
        } else {
            path = "/completion";
            body["prompt"] = req.prompt;
            body["n_predict"] = req.n_predict;
        }
        if (req.seed) body["seed"] = *req.seed;
        if (!req.stop.empty()) body["stop"] = req.stop;
        bool done = false;
        std::optional<llama_server_timings> timings;
        auto& st = result.stats;
        auto r = client_->post_stream_lines(path, body, [&](std::string_view line) {
            if (line.rfind("data:", 0) != 0) return true;
            std::string_view data = line.substr(5);
            while (!data.empty() && data.front() == ' ') data.remove_prefix(1);
            if (data == "[DONE]") {
                done = true;
                return false;
            }
            auto ev = parse_llama_server_event(parse_server_json(data, "llama-server " + path), chat);
            if (!ev.error.empty()) throw error("llama_cpp: server error: " + ev.error);
            bool keep_going = emit(ev.content);
            if (ev.timings) timings = ev.timings;
            if (ev.n_prompt_tokens) st.n_prompt_tokens = *ev.n_prompt_tokens;
            if (ev.n_gen_tokens) st.n_gen_tokens = *ev.n_gen_tokens;
            if (ev.final) {
                result.finish_reason = ev.finish_reason;
                // /completion ends with its final message; a chat stream still sends usage and [DONE].
                if (!chat) {
                    done = true;
                    return false;
                }
            }
            return keep_going;
        });
        if (r.status != 200) throw error("llama_cpp: " + path + ": " + describe_http_error(r));
        if (timings) {
            if (st.n_gen_tokens <= 0 && timings->predicted_n) st.n_gen_tokens = *timings->predicted_n;
            if (st.n_prompt_tokens < 0 && timings->prompt_n)
                st.n_prompt_tokens = *timings->prompt_n + timings->cache_n.value_or(0);
            if (timings->prompt_ms) st.backend_prompt_ms = *timings->prompt_ms;
            if (timings->predicted_ms) st.backend_decode_ms = *timings->predicted_ms;
            st.server_prefill_tokens_per_s = server_prefill_tokens_per_s(*timings);
            st.server_decode_tokens_per_s = server_decode_tokens_per_s(*timings);
        }
        if (chat && !result.finish_reason.empty()) done = true;
        if (!done && result.finish_reason != "cancelled") {
            if (server_.pid() > 0 && !server_.running())
                throw error("llama_cpp: llama-server exited during generation; its log:\n" + tail_of_file(log_path_, 2000));
            if (result.text.empty()) throw error("llama_cpp: stream ended before the final message");
            result.finish_reason = "incomplete";
        }
    }

private:
    // --llama-server PATH, $EDGELLM_LLAMA_SERVER, $LLAMA_SERVER, PATH, then the build of
    // scripts/build-llama-cpp.sh ($EDGELLM_LLAMA_CPP_DIR or ~/.cache/edgellm/llama.cpp-0.3.36).
    static std::optional<std::string> server_binary(const backend_settings& s) {
        auto it = s.extra.find("binary");
        if (it != s.extra.end() && !it->second.empty()) return find_executable(it->second);
        for (const char* var : {"EDGELLM_LLAMA_SERVER", "LLAMA_SERVER"})
            if (const char* env = std::getenv(var); env && *env) return find_executable(env);
        if (auto on_path = find_executable("llama-server")) return on_path;
        std::filesystem::path dir;
        if (const char* d = std::getenv("EDGELLM_LLAMA_CPP_DIR"); d && *d) dir = d;
        else if (const char* home = std::getenv("HOME"); home && *home)
            dir = std::filesystem::path(home) / ".cache/edgellm/llama.cpp-0.3.36";
        if (!dir.empty()) return find_executable((dir / "bin" / "llama-server").string());
        return std::nullopt;
    }

    void wait_healthy(const std::string& url, double t0) {
        const double deadline = t0 + settings_.timeout_s * 1000;
        http_client probe(url, 1.0, 5.0);
        std::string last = "no answer";
        while (now_ms() < deadline) {
            if (server_.pid() > 0 && !server_.running())
                throw error("llama_cpp: llama-server exited while loading (status " +
                            std::to_string(server_.exit_status().value_or(-1)) + "); its log:\n" +
                            tail_of_file(log_path_, 2000));
            try {
                auto r = probe.get("/health");
                if (r.status == 200) return;
                last = describe_http_error(r);
            } catch (const error& e) {
                last = e.what();
                if (server_.pid() <= 0 && !settings_.base_url.empty()) throw error("llama_cpp: " + last);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        throw error("llama_cpp: llama-server at " + url + " not healthy after " +
                    std::to_string(static_cast<int>(settings_.timeout_s)) + " s (" + last + ")");
    }

    backend_settings settings_;
    child_process server_;
    std::string log_path_;
    std::unique_ptr<http_client> client_;
};

}  // namespace

std::unique_ptr<backend> make_llama_cpp_backend() { return std::make_unique<llama_cpp_backend>(); }

}  // namespace edgellm::backends
