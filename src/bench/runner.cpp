// Prompt-set benchmark runner (see runner.h) and the in-process resource sampler it uses.
#include "bench/runner.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/timing.h"

namespace edgellm::bench {

namespace {

// Samples this process's RSS and CPU time from /proc/self while a run is in progress. Only
// meaningful for in-process backends (native); servers run in other processes.
class process_sampler {
public:
    explicit process_sampler(double interval_ms) : interval_ms_(interval_ms) {
        start_ms_ = now_ms();
        last_cpu_s_ = cpu_seconds();
        last_ms_ = start_ms_;
        sample();
        thread_ = std::thread([this] { loop(); });
    }
    ~process_sampler() { stop(); }

    std::vector<resource_point> stop() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (stopped_) return points_;
            stopped_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
        sample();
        return points_;
    }

private:
    static uint64_t rss_bytes() {
        std::ifstream in("/proc/self/statm");
        uint64_t size = 0, resident = 0;
        in >> size >> resident;
        return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    }
    static double cpu_seconds() {
        std::ifstream in("/proc/self/stat");
        std::string line;
        std::getline(in, line);
        // Fields after the command name (which may contain spaces) start after the last ')'.
        auto pos = line.rfind(')');
        if (pos == std::string::npos) return 0.0;
        std::istringstream rest(line.substr(pos + 2));
        std::string field;
        unsigned long long utime = 0, stime = 0;
        for (int i = 3; i <= 15 && rest >> field; ++i) {
            if (i == 14) utime = std::stoull(field);
            if (i == 15) stime = std::stoull(field);
        }
        return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
    void sample() {
        double t = now_ms();
        double cpu = cpu_seconds();
        resource_point p;
        p.t_ms = t - start_ms_;
        p.rss_bytes = rss_bytes();
        double dt_s = (t - last_ms_) / 1000.0;
        p.cpu_pct = dt_s > 0.005 ? std::max(0.0, (cpu - last_cpu_s_) / dt_s * 100.0) : 0.0;
        last_ms_ = t;
        last_cpu_s_ = cpu;
        points_.push_back(p);
    }
    void loop() {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stopped_) {
            cv_.wait_for(lock, std::chrono::duration<double, std::milli>(interval_ms_));
            if (!stopped_) sample();
        }
    }

    double interval_ms_;
    double start_ms_ = 0, last_ms_ = 0, last_cpu_s_ = 0;
    std::vector<resource_point> points_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopped_ = false;
    std::thread thread_;
};

std::string read_first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

// First prompt of the set, truncated at a UTF-8 boundary.
std::string clip_utf8(const std::string& s, size_t max_bytes) {
    if (s.size() <= max_bytes) return s;
    size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

}  // namespace

const std::vector<prompt_case>& builtin_prompts() {
    static const std::vector<prompt_case> prompts = {
        {"short", "Explain edge AI in one sentence."},
        {"medium",
         "You are helping an engineer choose how to run a language model on a small device with 8 GB of "
         "memory. Compare running the model on the CPU with offloading some layers to the GPU, and say what "
         "limits the speed of each option."},
        // About 700 characters: long enough to make prefill visible, short enough to fit a
        // 512-token context with 64 generated tokens even with a byte-level vocabulary.
        {"long",
         "Summarise these notes for a report. The team measured three backends on a Jetson Orin Nano: a "
         "native C++ engine, llama.cpp through its HTTP server, and Ollama, all with the same 4-bit 1.1B model. "
         "Time to first token grew with the prompt length, because the whole prompt is processed before the "
         "first token appears. Decode speed stayed almost constant, since each token reads all the weights once "
         "and memory bandwidth sets the limit. Peak memory was mostly the weights plus a few hundred megabytes "
         "of key-value cache. Batching raised total throughput but also the latency of each request. Recommend "
         "a setup for an interactive assistant and for an offline batch job."},
    };
    return prompts;
}

std::vector<prompt_case> load_prompts(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw usage_error(fmt::format("cannot open prompts file '{}'", path));
    std::vector<prompt_case> out;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        prompt_case p;
        auto tab = line.find('\t');
        if (tab != std::string::npos && tab > 0) {
            p.id = line.substr(0, tab);
            p.text = line.substr(tab + 1);
        } else {
            p.id = fmt::format("p{}", out.size() + 1);
            p.text = line;
        }
        out.push_back(std::move(p));
    }
    if (out.empty()) throw usage_error(fmt::format("prompts file '{}' has no prompts", path));
    return out;
}

system_info detect_system() {
    system_info s;
    s.device = "cpu";
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos && s.cpu.empty()) s.cpu = line.substr(line.find_first_not_of(" \t", colon + 1));
        }
    }
    s.n_cpu_cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::ifstream meminfo("/proc/meminfo");
    while (std::getline(meminfo, line)) {
        if (line.rfind("MemTotal:", 0) == 0) {
            std::istringstream f(line.substr(9));
            uint64_t kib = 0;
            f >> kib;
            s.ram_total_bytes = kib * 1024;
        }
    }
    std::ifstream osr("/etc/os-release");
    while (std::getline(osr, line)) {
        if (line.rfind("PRETTY_NAME=", 0) == 0) {
            s.os = line.substr(12);
            s.os.erase(std::remove(s.os.begin(), s.os.end(), '"'), s.os.end());
        }
    }
    utsname u{};
    if (uname(&u) == 0) s.os += fmt::format("{}{} {}", s.os.empty() ? "" : ", ", u.sysname, u.release);
    if (!read_first_line("/etc/nv_tegra_release").empty()) s.device = "jetson";
    return s;
}

build_info this_build() {
    build_info b;
#ifdef EDGELLM_VERSION
    b.version = EDGELLM_VERSION;
#endif
#if defined(__clang__)
    b.compiler = fmt::format("clang++ {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    b.compiler = fmt::format("g++ {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#endif
#ifdef NDEBUG
    b.build_type = "Release";
#else
    b.build_type = "Debug";
#endif
#ifdef EDGELLM_HAVE_CUDA
    b.cuda = true;
#endif
    return b;
}

bench_report run_prompt_benchmark(
    const run_plan& plan, const progress_callback& progress,
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create) {
    if (plan.models.empty()) throw usage_error("bench: no model given (-m MODEL)");
    if (plan.backends.empty()) throw usage_error("bench: no backend given (--backends NAME ...)");
    if (plan.prompts.empty()) throw usage_error("bench: no prompts");
    if (!plan.served_model.empty() && plan.models.size() != 1)
        throw usage_error("bench: a served model name needs exactly one -m model to stand for");
    if (plan.n_runs < 1) throw usage_error(fmt::format("--runs must be at least 1, got {}", plan.n_runs));
    if (plan.n_warmup < 0) throw usage_error(fmt::format("--warmup must be >= 0, got {}", plan.n_warmup));
    if (plan.n_predict < 1) throw usage_error(fmt::format("-n must be at least 1, got {}", plan.n_predict));

    bench_report r;
    r.created_utc = utc_now_iso8601();
    r.system = detect_system();
    r.build = this_build();
    auto& st = r.settings;
    st.mode = "prompts";
    st.backends = plan.backends;
    st.models = plan.models;
    st.prompt_set = plan.prompt_set;
    st.n_runs = plan.n_runs;
    st.n_warmup = plan.n_warmup;
    st.n_predict = plan.n_predict;
    st.n_threads = plan.settings.n_threads;
    st.n_ctx = plan.settings.n_ctx;
    st.n_gpu_layers = plan.settings.n_gpu_layers;
    st.seed = plan.seed;
    st.temperature = plan.temperature;

    progress_event ev;
    ev.n_total = plan.backends.size() * plan.models.size() * plan.prompts.size() * static_cast<size_t>(plan.n_runs);
    auto notify = [&](const std::string& what) {
        if (progress) {
            ev.what = what;
            progress(ev);
        }
    };
    auto failed_sample = [&](const std::string& backend, const std::string& model, const std::string& why) {
        run_sample s;
        s.backend = backend;
        s.model = model;
        s.prompt_id.push_back('-');  // no prompt ran
        s.error = why;
        r.samples.push_back(std::move(s));
    };

    for (const auto& backend_name : plan.backends) {
        for (const auto& model : plan.models) {
            ev.backend = backend_name;
            ev.model = model;
            ev.prompt_id.clear();
            const size_t n_planned = plan.prompts.size() * static_cast<size_t>(plan.n_runs);
            std::unique_ptr<backends::backend> be;
            backends::backend_settings settings = plan.settings;
            settings.model = model;
            if (auto it = plan.served_model.find(backend_name); it != plan.served_model.end())
                settings.model = it->second;
            try {
                be = create ? create(backend_name) : backends::create_backend(backend_name);
                auto avail = be->check_available(settings);
                if (!avail.available) {
                    std::string why = fmt::format("{} is not available: {}", backend_name, avail.reason);
                    if (!avail.hint.empty()) why += fmt::format(" ({})", avail.hint);
                    ev.message = why;
                    notify("unavailable");
                    failed_sample(backend_name, model, why);
                    ev.n_done += n_planned;
                    continue;
                }
                notify("loading");
                be->load(settings);
            } catch (const std::exception& e) {
                ev.message = e.what();
                notify("failed");
                failed_sample(backend_name, model, fmt::format("{}: {}", backend_name, e.what()));
                ev.n_done += n_planned;
                continue;
            }
            const bool in_process = be->name() == "native";
            for (const auto& prompt : plan.prompts) {
                ev.prompt_id = prompt.id;
                backends::generation_request req;
                req.prompt = prompt.text;
                req.n_predict = plan.n_predict;
                req.temperature = static_cast<float>(plan.temperature);
                req.seed = plan.seed;
                auto ignore = [](std::string_view) { return true; };
                for (int w = 0; w < plan.n_warmup; ++w) {
                    ev.run_index = w;
                    notify("warm-up");
                    try {
                        be->generate(req, ignore);
                    } catch (const std::exception&) {
                        // The measured run below reports the failure.
                    }
                }
                for (int run = 0; run < plan.n_runs; ++run) {
                    ev.run_index = run;
                    notify("run");
                    run_sample s;
                    s.backend = backend_name;
                    s.model = model;
                    s.prompt_id = prompt.id;
                    s.run_index = run;
                    // No GPU monitor here yet, and edgellm's own CPU time says nothing about a
                    // server process: not measured rather than 0.
                    s.gpu_util_pct = std::nan("");
                    if (!in_process) s.cpu_pct = std::nan("");
                    std::unique_ptr<process_sampler> sampler;
                    if (in_process) sampler = std::make_unique<process_sampler>(plan.sample_interval_ms);
                    try {
                        auto res = be->generate(req, ignore);
                        const auto& gs = res.stats;
                        s.ttft_ms = gs.ttft_ms;
                        s.latency_ms = gs.total_ms;
                        // Backends report 0 when they could not compute a speed (prompt size
                        // unknown, a single token): that is "not measured", not "zero".
                        const double unknown = std::nan("");
                        s.prefill_tokens_per_s = gs.prefill_tokens_per_s > 0 ? gs.prefill_tokens_per_s : unknown;
                        s.decode_tokens_per_s = gs.decode_tokens_per_s > 0 ? gs.decode_tokens_per_s : unknown;
                        s.n_prompt_tokens = static_cast<int>(std::max<int64_t>(gs.n_prompt_tokens, 0));
                        s.n_gen_tokens = static_cast<int>(gs.n_gen_tokens);
                        s.output_sample = sanitize_utf8(clip_utf8(res.text, plan.output_sample_chars));
                        if (gs.backend_gpu_memory_bytes) s.gpu_mem_bytes = *gs.backend_gpu_memory_bytes;
                        if (!in_process && gs.backend_memory_bytes) s.peak_rss_bytes = *gs.backend_memory_bytes;
                    } catch (const std::exception& e) {
                        s.error = e.what();
                        ev.message = e.what();
                        notify("failed");
                    }
                    if (sampler) {
                        s.resources = sampler->stop();
                        double cpu_sum = 0;
                        for (const auto& p : s.resources) {
                            s.peak_rss_bytes = std::max(s.peak_rss_bytes, p.rss_bytes);
                            cpu_sum += p.cpu_pct;
                        }
                        if (s.resources.size() > 1) cpu_sum /= static_cast<double>(s.resources.size() - 1);
                        s.cpu_pct = cpu_sum;
                    }
                    r.samples.push_back(std::move(s));
                    ++ev.n_done;
                }
            }
            try {
                be->unload();
            } catch (const std::exception&) {
                // Nothing more to measure; an unload problem must not lose the results.
            }
        }
    }
    return r;
}

}  // namespace edgellm::bench
