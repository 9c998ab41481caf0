// Python-hosted backends (Transformers, llama-cpp-python, ONNX Runtime GenAI): a worker script
// from workers/ runs in its own process and speaks JSON lines over stdin/stdout:
//   -> {"op":"load", "model":..., "settings":{...}}        <- {"ok":true, "load_ms":...}
//   -> {"op":"generate", "prompt"|"messages", "params"}     <- {"piece":"..."}* then {"done":true, ...}
//      (done: n_prompt_tokens, n_gen_tokens, prompt_token_ids, token_ids, prompt_ms, decode_ms,
//       n_decode_tokens, finish_reason; each optional)
//   -> {"op":"embed", "texts":[...]}                        <- {"n_inputs", "n_tokens", "n_embd", "ms"}
//   any failure                                             <- {"error":"..."}
// `python3 WORKER --check` prints {"available":bool, "missing":[PyPI names], "errors":{name: why},
// "versions":{...}, "python": interpreter}.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "backends/factories.h"
#include "core/error.h"
#include "core/process.h"
#include "core/timing.h"

#ifndef EDGELLM_SOURCE_WORKERS_DIR
#define EDGELLM_SOURCE_WORKERS_DIR ""
#endif

namespace edgellm::backends {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

std::string python_interpreter() {
    if (const char* p = std::getenv("EDGELLM_PYTHON"); p && *p) return p;
    return "python3";
}

// Worker scripts: $EDGELLM_WORKERS_DIR, the install tree (<prefix>/share/edgellm/workers), or the
// source tree the binary was built from.
std::optional<std::string> find_worker_script(const std::string& worker) {
    std::vector<fs::path> dirs;
    if (const char* d = std::getenv("EDGELLM_WORKERS_DIR"); d && *d) dirs.emplace_back(d);
    fs::path exe_dir = self_exe_dir();
    dirs.push_back(exe_dir / ".." / "share" / "edgellm" / "workers");
    if (*EDGELLM_SOURCE_WORKERS_DIR) dirs.emplace_back(EDGELLM_SOURCE_WORKERS_DIR);
    for (const auto& d : dirs) {
        auto p = d / (worker + "_worker.py");
        if (fs::exists(p)) return fs::weakly_canonical(p).string();
    }
    return std::nullopt;
}

// "exit status 3", "killed by signal 9": how the worker ended (child_process reports a signal
// as 128 + its number, as shells do).
std::string describe_exit(std::optional<int> status) {
    if (!status) return "still running, but its output closed";
    if (*status > 128) return "killed by signal " + std::to_string(*status - 128);
    return "exit status " + std::to_string(*status);
}

// The last `n_lines` lines of the worker's stderr log (its traceback), for the error message.
std::string log_tail(const std::string& path, size_t n_lines) {
    std::ifstream in(path);
    std::deque<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line.substr(0, 400));
        if (lines.size() > n_lines) lines.pop_front();
    }
    if (lines.empty()) return "  (nothing)";
    std::string out;
    for (const auto& l : lines) out += "  " + l + "\n";
    out.pop_back();
    return out;
}

json parse_worker_line(const std::string& line, const std::string& worker) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw error(worker + " worker: unexpected output (not a JSON object): '" + line.substr(0, 200) + "'");
    if (j.contains("error")) throw error(worker + " worker: " + j["error"].get<std::string>());
    return j;
}

class python_worker_backend final : public backend {
public:
    explicit python_worker_backend(std::string worker) : worker_(std::move(worker)) {}
    std::string name() const override { return worker_; }
    std::string description() const override { return "Python worker (" + worker_ + ")"; }

    availability check_available(const backend_settings& s) const override {
        auto script = find_worker_script(worker_);
        if (!script) return {false, "worker script " + worker_ + "_worker.py not found", "set EDGELLM_WORKERS_DIR"};
        auto py = find_executable(python_interpreter());
        if (!py) return {false, "no Python interpreter (" + python_interpreter() + ")", "install python3 or set EDGELLM_PYTHON"};
        try {
            process_options po;
            po.pipe_stdout = true;
            po.stderr_path = "/dev/null";
            child_process p({*py, *script, "--check"}, po);
            auto line = p.read_line(30);
            if (!line) return {false, "worker check printed nothing", ""};
            auto j = json::parse(*line, nullptr, false);
            if (j.is_discarded()) return {false, "worker check printed '" + line->substr(0, 100) + "'", ""};
            if (j.value("available", false)) {
                std::string v;
                const json versions = j.value("versions", json::object());
                for (const auto& [k, val] : versions.items())
                    v += (v.empty() ? "" : ", ") + k + " " + (val.is_string() ? val.get<std::string>() : val.dump());
                return {true, v, ""};
            }
            // The PyPI packages whose import failed, and why (installed but failing to import,
            // e.g. torch without its CUDA runtime libraries, is not the same as absent).
            std::string missing, why;
            const json missing_list = j.value("missing", json::array());
            const json errors = j.value("errors", json::object());
            for (const auto& m : missing_list) {
                if (!m.is_string()) continue;
                const auto name = m.get<std::string>();
                missing += (missing.empty() ? "" : " ") + name;
                const std::string err = errors.contains(name) && errors[name].is_string() ? errors[name].get<std::string>() : "";
                if (!err.empty() && err.find("No module named") == std::string::npos)
                    why += "; " + name + " is installed but fails to import: " + err.substr(0, 300);
            }
            const std::string python = j.value("python", *py);
            return {false, "missing Python packages for " + python + ": " + missing + why,
                    "scripts/install-deps.sh --test --python-backends (the CPU set, see docs/backends.md), or " + python +
                        " -m pip install " + missing + "; EDGELLM_PYTHON picks another interpreter"};
        } catch (const std::exception& e) {
            return {false, std::string("worker check failed: ") + e.what(), ""};
        }
    }

    void load(const backend_settings& s) override {
        settings_ = s;
        const double t0 = now_ms();
        auto script = find_worker_script(worker_);
        if (!script) throw error(worker_ + ": worker script not found (set EDGELLM_WORKERS_DIR)");
        auto py = find_executable(python_interpreter());
        if (!py) throw error(worker_ + ": no Python interpreter found (install python3 or set EDGELLM_PYTHON)");
        log_path_ = (fs::temp_directory_path() / ("edgellm-" + worker_ + "-worker.log")).string();
        process_options po;
        po.pipe_stdin = true;
        po.pipe_stdout = true;
        po.stderr_path = log_path_;
        proc_ = child_process({*py, *script}, po);
        json settings = {{"n_threads", s.n_threads}, {"n_ctx", s.n_ctx}, {"n_batch", s.n_batch},
                         {"n_gpu_layers", s.n_gpu_layers}};
        for (const auto& [k, v] : s.extra) settings[k] = v;
        send({{"op", "load"}, {"model", s.model}, {"settings", settings}});
        auto j = receive(s.timeout_s);
        load_ms_ = j.contains("load_ms") ? j["load_ms"].get<double>() : now_ms() - t0;
    }

    std::optional<int> process_id() const override {
        if (proc_.pid() > 0) return proc_.pid();
        return std::nullopt;
    }

    void unload() override {
        if (proc_.pid() > 0) {
            try {
                send({{"op", "exit"}});
            } catch (const error&) {
            }
            proc_.terminate(2.0);
        }
    }
    ~python_worker_backend() override { unload(); }

    embed_stats embed(const std::vector<std::string>& texts) override {
        if (proc_.pid() <= 0) throw error(worker_ + ": embed called before load");
        send({{"op", "embed"}, {"texts", texts}});
        const json j = receive(settings_.timeout_s);
        embed_stats st;
        st.n_inputs = j.value("n_inputs", int64_t{0});
        st.n_tokens = j.value("n_tokens", int64_t{0});
        st.n_embd = j.value("n_embd", int64_t{0});
        st.ms = j.value("ms", 0.0);
        return st;
    }

protected:
    void do_generate(const generation_request& req, const std::function<bool(std::string_view)>& emit,
                     generation_result& result) override {
        if (proc_.pid() <= 0) throw error(worker_ + ": the worker is not running (not loaded, or it exited: see " + log_path_ + ")");
        json params = {{"n_predict", req.n_predict}, {"temperature", req.temperature}, {"top_k", req.top_k},
                       {"top_p", req.top_p}, {"min_p", req.min_p}, {"repeat_penalty", req.repeat_penalty}};
        if (req.seed) params["seed"] = *req.seed;
        if (!req.stop.empty()) params["stop"] = req.stop;
        json msg = {{"op", "generate"}, {"params", params}};
        if (req.chat()) {
            msg["messages"] = json::array();
            for (const auto& m : req.messages) msg["messages"].push_back({{"role", m.role}, {"content", m.content}});
        } else {
            msg["prompt"] = req.prompt;
        }
        send(msg);
        bool stop_requested = false;
        for (;;) {
            auto j = receive(settings_.timeout_s);
            if (j.contains("piece")) {
                // After a cancel we keep draining until "done" so the protocol stays in step.
                if (!stop_requested && !emit(j["piece"].get<std::string>())) stop_requested = true;
                continue;
            }
            if (j.value("done", false)) {
                auto& s = result.stats;
                if (j.contains("n_prompt_tokens")) s.n_prompt_tokens = j["n_prompt_tokens"].get<int64_t>();
                if (j.contains("n_gen_tokens")) s.n_gen_tokens = j["n_gen_tokens"].get<int64_t>();
                if (j.contains("prompt_ms")) s.backend_prompt_ms = j["prompt_ms"].get<double>();
                if (j.contains("decode_ms")) s.backend_decode_ms = j["decode_ms"].get<double>();
                if (j.contains("memory_bytes")) s.backend_memory_bytes = j["memory_bytes"].get<uint64_t>();
                if (j.contains("gpu_memory_bytes")) s.backend_gpu_memory_bytes = j["gpu_memory_bytes"].get<uint64_t>();
                // The worker's decode_ms covers the tokens after the first (n_decode_tokens).
                if (j.contains("n_decode_tokens") && s.backend_decode_ms && *s.backend_decode_ms > 0 &&
                    j["n_decode_tokens"].get<int64_t>() > 0)
                    s.server_decode_tokens_per_s = j["n_decode_tokens"].get<double>() * 1000.0 / *s.backend_decode_ms;
                if (j.contains("token_ids")) result.tokens = j["token_ids"].get<std::vector<int32_t>>();
                if (j.contains("prompt_token_ids")) result.prompt_tokens = j["prompt_token_ids"].get<std::vector<int32_t>>();
                result.finish_reason = j.value("finish_reason", std::string("stop"));
                return;
            }
        }
    }

private:
    void send(const json& j) { proc_.write_line(j.dump()); }

    json receive(double timeout_s) {
        std::optional<std::string> line;
        try {
            line = proc_.read_line(timeout_s);
        } catch (const error& e) {
            throw error(worker_ + " worker: " + e.what());
        }
        if (!line) {
            // Its output closed: give the process a moment to end so its status is known.
            for (int i = 0; i < 50 && proc_.running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            throw error(worker_ + " worker exited unexpectedly (" + describe_exit(proc_.exit_status()) +
                        "); its log " + log_path_ + " ends with:\n" + log_tail(log_path_, 12));
        }
        return parse_worker_line(*line, worker_);
    }

    std::string worker_;
    backend_settings settings_;
    child_process proc_;
    std::string log_path_;
};

}  // namespace

std::unique_ptr<backend> make_python_worker_backend(const std::string& worker) {
    return std::make_unique<python_worker_backend>(worker);
}

}  // namespace edgellm::backends
