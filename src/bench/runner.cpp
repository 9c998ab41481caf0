// Prompt-set benchmark runner (see runner.h): runs, timings, and per-run resource figures from
// the resource monitor (the process doing the work, GPU, power and energy per token).
#include "bench/runner.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/timing.h"
#include "model/gpu_layers.h"
#include "monitor/monitor.h"

namespace edgellm::bench {

namespace {

// The port of a URL whose host is this machine ("http://127.0.0.1:8080/v1" -> 8080), so the
// server behind it can be found by its listening socket; nullopt for remote or unparsable URLs.
std::optional<int> local_port(const std::string& url) {
    auto scheme = url.find("://");
    if (scheme == std::string::npos) return std::nullopt;
    std::string rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    std::string host, port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) return std::nullopt;
        host = rest.substr(1, close - 1);
        if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
    } else {
        auto colon = rest.rfind(':');
        host = rest.substr(0, colon);
        if (colon != std::string::npos) port = rest.substr(colon + 1);
    }
    if (host != "localhost" && host != "127.0.0.1" && host != "::1" && host != "0.0.0.0") return std::nullopt;
    if (port.empty()) return url.rfind("https", 0) == 0 ? 443 : 80;
    if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) return std::nullopt;
    return std::stoi(port);
}

// The process whose RSS and CPU a run's figures describe: this one for in-process backends, else
// the server or worker the backend started, else whatever listens on a local --url's port.
struct watched_process {
    int pid = 0;        // 0 = this process
    std::string label;  // run_sample::monitored_process; empty = none
};

watched_process choose_process(const backends::backend& be, const backends::backend_settings& settings,
                               const std::filesystem::path& root) {
    if (be.name() == "native") return {0, "self"};
    std::optional<int> pid = be.process_id();
    if (!pid && !settings.base_url.empty())
        if (auto port = local_port(settings.base_url)) pid = monitor::find_listening_pid(*port, root);
    if (!pid || *pid <= 0) return {};
    std::string name = monitor::process_name(*pid, root);
    return {*pid, name.empty() ? fmt::format("pid {}", *pid) : fmt::format("pid {} ({})", *pid, name)};
}

// Fills a run's resource figures from the monitor's samples.
void fill_resources(run_sample& s, const std::vector<monitor::sample>& samples, const std::string& power_source,
                    bool process_measured) {
    const double unknown = std::nan("");
    bool any_gpu = false, any_power = false, process_seen = false;
    double cpu_sum = 0, util_sum = 0, power_sum = 0;
    int n_cpu = 0, n_util = 0, n_power = 0;
    uint64_t peak_rss = 0, peak_gpu_mem = 0;
    std::vector<resource_point> points;
    for (size_t i = 0; i < samples.size(); ++i) {
        const auto& m = samples[i];
        resource_point p;
        p.t_ms = m.t_ms;
        p.cpu_pct = unknown;
        p.gpu_util_pct = unknown;
        if (process_measured && m.process_found) {
            process_seen = true;
            p.rss_bytes = m.rss_bytes;
            peak_rss = std::max(peak_rss, m.rss_bytes);
            // The first sample has no interval before it to measure CPU time over.
            if (i > 0 && samples[i - 1].process_found) {
                p.cpu_pct = m.process_cpu_percent;
                cpu_sum += m.process_cpu_percent;
                ++n_cpu;
            }
        }
        if (m.gpu_memory_used_bytes) {
            any_gpu = true;
            p.gpu_mem_bytes = *m.gpu_memory_used_bytes;
            peak_gpu_mem = std::max(peak_gpu_mem, *m.gpu_memory_used_bytes);
        }
        if (m.gpu_utilization_percent) {
            any_gpu = true;
            p.gpu_util_pct = *m.gpu_utilization_percent;
            util_sum += *m.gpu_utilization_percent;
            ++n_util;
        }
        if (m.power_w) {
            any_power = true;
            p.power_w = m.power_w;
            power_sum += *m.power_w;
            ++n_power;
        }
        points.push_back(p);
    }
    if (process_seen) {
        s.peak_rss_bytes = std::max(s.peak_rss_bytes, peak_rss);
        s.cpu_pct = n_cpu ? cpu_sum / n_cpu : unknown;
    }
    if (peak_gpu_mem > 0) s.gpu_mem_bytes = peak_gpu_mem;
    if (n_util) s.gpu_util_pct = util_sum / n_util;
    if (n_power) {
        s.mean_power_w = power_sum / n_power;
        s.power_source = power_source;
        s.energy_j = monitor::integrate_energy_j(samples);
        if (s.energy_j && s.n_gen_tokens > 0 && s.error.empty())
            s.energy_j_per_token = *s.energy_j / s.n_gen_tokens;
    }
    // A series with nothing known in it would only draw flat zeros.
    if (process_seen || any_gpu || any_power) s.resources = std::move(points);
}

// CPU time of the watched process at one instant, for a per-run delta (cpu_pct = CPU time /
// wall time). This process: getrusage, microseconds. Another (or a fixture tree): /proc ticks.
struct cpu_reading {
    bool ok = false;
    double cpu_ms = 0;
    double wall_ms = 0;      // core/timing's now_ms, or the monitor's clock for fixture trees
    double resolution_ms = 0;
};

cpu_reading read_cpu(int pid, const std::filesystem::path& root, const std::function<double()>& clock) {
    cpu_reading c;
    c.wall_ms = clock ? clock() : now_ms();
    if (pid == 0 && root == "/") {
        rusage ru{};
        if (getrusage(RUSAGE_SELF, &ru) != 0) return c;
        auto ms = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3; };
        c.cpu_ms = ms(ru.ru_utime) + ms(ru.ru_stime);
        c.resolution_ms = 0.001;
        c.ok = true;
        return c;
    }
    auto snap = monitor::read_proc_snapshot(root, pid);
    if (!snap.found) return c;
    const double tick_ms = 1000.0 / static_cast<double>(std::max(sysconf(_SC_CLK_TCK), 1L));
    c.cpu_ms = static_cast<double>(snap.process_cpu_ticks) * tick_ms;
    c.resolution_ms = tick_ms;
    c.ok = true;
    return c;
}

// Sets s.cpu_pct from CPU-time readings at the start and end of the run (the sampler's
// 50 ms ticks can miss a short run entirely); not measured, with a note, when the run is too
// short for the clock's resolution to give a figure within 10 %.
void apply_cpu(run_sample& s, const cpu_reading& a, const cpu_reading& b, double sampler_cpu_ms, bool self) {
    if (!a.ok || !b.ok) {
        s.cpu_pct = std::nan("");
        s.notes.push_back("cpu_pct: the process's CPU time was unreadable");
        return;
    }
    const double wall = b.wall_ms - a.wall_ms;
    if (wall < 10 * a.resolution_ms || wall <= 0) {
        s.cpu_pct = std::nan("");
        s.notes.push_back(fmt::format("cpu_pct: run too short (< {:.0f} ms) for the {:.0f} ms CPU-time ticks",
                                      10 * a.resolution_ms, a.resolution_ms));
        return;
    }
    // This process's CPU time includes the sampler thread's, which is not the backend's work.
    double cpu = b.cpu_ms - a.cpu_ms - (self ? sampler_cpu_ms : 0.0);
    s.cpu_pct = 100.0 * std::max(cpu, 0.0) / wall;
}

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
    // The engine can put layers on a GPU here (-ngl): CUDA kernels built and a device present.
    // Whether a run did is in its settings (n_gpu_layers), refused runs fail with the reason.
    b.cuda_offload = b.cuda && model::gpu_offload_unavailable_reason().empty();
    return b;
}

std::vector<std::pair<std::string, std::string>> backend_model_pairs(const std::vector<std::string>& backends,
                                                                      const std::vector<std::string>& models,
                                                                      bool paired) {
    std::vector<std::pair<std::string, std::string>> out;
    if (paired && models.size() != 1 && backends.size() != 1) {
        if (models.size() != backends.size())
            throw usage_error(fmt::format(
                "bench: pairing backends with models needs one model per backend (or a single backend or model), "
                "got {} backend(s) and {} model(s)",
                backends.size(), models.size()));
        for (size_t i = 0; i < backends.size(); ++i) out.emplace_back(backends[i], models[i]);
        return out;
    }
    for (const auto& b : backends)
        for (const auto& m : models) out.emplace_back(b, m);
    return out;
}

double measure_memory_bandwidth_bytes_per_s(size_t buffer_bytes) {
    std::vector<uint64_t> buf(std::max<size_t>(buffer_bytes / sizeof(uint64_t), 1024));
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = i;  // touch every page before timing
    double best_ms = 0;
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 4; ++pass) {
        const double t0 = now_ms();
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = 0; i + 4 <= buf.size(); i += 4) {
            a += buf[i];
            b += buf[i + 1];
            c += buf[i + 2];
            d += buf[i + 3];
        }
        sink = sink + a + b + c + d;
        const double ms = now_ms() - t0;
        if (pass > 0 && (best_ms == 0 || ms < best_ms)) best_ms = ms;  // pass 0 warms the TLB
    }
    if (best_ms <= 0) return 0;
    return static_cast<double>(buf.size() * sizeof(uint64_t)) / (best_ms / 1000.0);
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

    std::shared_ptr<const device::nvml_interface> nvml = plan.nvml;
    if (!nvml && plan.monitor_root == "/") nvml = device::make_system_nvml();
    if (nvml && !nvml->available()) nvml.reset();

    bench_report r;
    r.created_utc = utc_now_iso8601();
    r.system = detect_system();
    if (nvml && nvml->device_count() > 0) {
        if (auto g = nvml->device(0)) {
            r.system.gpu = g->name;
            r.system.gpu_mem_total_bytes = g->memory_total_bytes;
            if (nvml->device_count() > 1) r.system.gpu += fmt::format(" (+{} more)", nvml->device_count() - 1);
            if (r.system.device == "cpu") r.system.device = "cuda";
        }
    }
    if (plan.measure_bandwidth) r.system.mem_bandwidth_bytes_per_s = measure_memory_bandwidth_bytes_per_s();
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
    st.options = plan.settings.extra;

    progress_event ev;
    const auto combos = backend_model_pairs(plan.backends, plan.models, plan.pair_models);
    ev.n_total = combos.size() * plan.prompts.size() * static_cast<size_t>(plan.n_runs);
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

    for (const auto& combo : combos) {
        // Named references, not structured bindings: lambdas below capture them (clang 14).
        const std::string& backend_name = combo.first;
        const std::string& model = combo.second;
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
        const watched_process watched = choose_process(*be, settings, plan.monitor_root);
        const bool process_measured = !watched.label.empty();
        auto request_for = [&](const prompt_case& prompt) {
            backends::generation_request req;
            if (plan.chat)
                req.messages = {{"user", prompt.text}};
            else
                req.prompt = prompt.text;
            req.n_predict = plan.n_predict;
            req.temperature = static_cast<float>(plan.temperature);
            req.seed = plan.seed;
            return req;
        };
        auto ignore = [](std::string_view) { return true; };
        for (const auto& prompt : plan.prompts) {
            ev.prompt_id = prompt.id;
            for (int w = 0; w < plan.n_warmup; ++w) {
                ev.run_index = w;
                notify("warm-up");
                try {
                    be->generate(request_for(prompt), ignore);
                } catch (const std::exception&) {
                    // The measured run below reports the failure.
                }
            }
        }
        // Runs go round the prompts (run 0 of every prompt, then run 1, ...), so consecutive
        // requests differ whenever there are several prompts: servers that keep the previous
        // request's KV cache and reuse its common prefix (llama-cpp-python does, always)
        // would otherwise skip the whole prefill of a repeated prompt and report a TTFT that
        // the native engine, which prefills every run, cannot be compared with.
        for (int run = 0; run < plan.n_runs; ++run) {
            for (const auto& prompt : plan.prompts) {
                ev.prompt_id = prompt.id;
                const backends::generation_request req = request_for(prompt);
                ev.run_index = run;
                notify("run");
                run_sample s;
                s.backend = backend_name;
                s.model = model;
                s.prompt_id = prompt.id;
                s.run_index = run;
                // Not measured until a reading says otherwise: a server nobody can follow
                // has no CPU figure, a machine without GPU readings no utilisation.
                s.gpu_util_pct = std::nan("");
                s.cpu_pct = std::nan("");
                s.monitored_process = watched.label;
                s.load_note = be->load_note();
                monitor::options mo;
                mo.interval_ms = plan.sample_interval_ms;
                mo.root = plan.monitor_root;
                mo.pid = watched.pid;
                mo.nvml = nvml;
                mo.cpu_package_power = plan.cpu_package_power;
                mo.clock_ms = plan.monitor_clock_ms;
                monitor::resource_monitor mon(mo);
                const cpu_reading cpu_start = read_cpu(watched.pid, plan.monitor_root, plan.monitor_clock_ms);
                mon.start();
                try {
                    auto res = be->generate(req, ignore);
                    const auto& gs = res.stats;
                    s.ttft_ms = gs.ttft_ms;
                    s.latency_ms = gs.total_ms;
                    s.server_prefill_tokens_per_s = gs.server_prefill_tokens_per_s;
                    s.server_decode_tokens_per_s = gs.server_decode_tokens_per_s;
                    s.n_gen_pieces = static_cast<int>(gs.n_pieces);
                    s.notes = gs.notes;
                    // Backends report 0 when they could not compute a speed (prompt size
                    // unknown, a single token): that is "not measured", not "zero".
                    const double unknown = std::nan("");
                    s.prefill_tokens_per_s = gs.prefill_tokens_per_s > 0 ? gs.prefill_tokens_per_s : unknown;
                    s.decode_tokens_per_s = gs.decode_tokens_per_s > 0 ? gs.decode_tokens_per_s : unknown;
                    s.n_prompt_tokens = static_cast<int>(std::max<int64_t>(gs.n_prompt_tokens, 0));
                    s.n_gen_tokens = static_cast<int>(gs.n_gen_tokens);
                    s.n_gen_tokens_estimated = gs.n_gen_tokens_estimated;
                    s.output_sample = sanitize_utf8(clip_utf8(res.text, plan.output_sample_chars));
                    if (gs.backend_gpu_memory_bytes) s.gpu_mem_bytes = *gs.backend_gpu_memory_bytes;
                    s.draft_acceptance = gs.draft_acceptance;
                    // A server's own memory report stands in when its process cannot be
                    // followed; sampled RSS replaces it below when it can.
                    if (!process_measured && gs.backend_memory_bytes) s.peak_rss_bytes = *gs.backend_memory_bytes;
                } catch (const std::exception& e) {
                    s.error = e.what();
                    ev.message = e.what();
                    notify("failed");
                }
                mon.stop();
                const cpu_reading cpu_end = read_cpu(watched.pid, plan.monitor_root, plan.monitor_clock_ms);
                fill_resources(s, mon.samples(), mon.power_source(), process_measured);
                if (process_measured)
                    apply_cpu(s, cpu_start, cpu_end, mon.summarize().sampler_cpu_ms, watched.pid == 0);
                else
                    s.notes.push_back("cpu_pct: no process to follow");
                if (std::error_code ec; std::filesystem::is_regular_file(model, ec))
                    s.model_bytes = std::filesystem::file_size(model, ec);
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
    return r;
}

}  // namespace edgellm::bench
