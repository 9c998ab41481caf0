// Test helper: writes benchmark reports in every format from a fixed synthetic result set (or
// from a JSON report), and compares two reports, so Python tests and the browser check can
// drive the reporters without an engine.
//   bench_report_tool write   --format json|csv|md|html|console [--out FILE] [--slowdown F]
//   bench_report_tool convert IN.json --format ... [--out FILE]
//   bench_report_tool compare A.json B.json [--threshold PCT] [--markdown]   (exit 2 on regression)
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/compare.h"
#include "bench/html_report.h"
#include "bench/report_json.h"
#include "bench/report_text.h"
#include "core/error.h"

using namespace edgellm;
using namespace edgellm::bench;

namespace {

// Deterministic noise so every invocation writes the same report.
struct lcg {
    uint64_t state;
    double next() {  // uniform in [-1, 1)
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<double>(state >> 11) / static_cast<double>(1ull << 53) * 2.0 - 1.0;
    }
};

// Two backends x two models x three prompts x three runs on a synthetic Jetson, plus micro
// tests and sweeps. `slowdown` scales every time (and divides every speed) to fake a regression.
bench_report synthetic_report(double slowdown) {
    // Resource series lengths depend on the (slowed) latency, so they draw from their own
    // generator: the metrics' noise is then identical for every slowdown.
    lcg rng{42}, res_rng{7};
    bench_report r;
    r.created_utc = "2026-11-28T02:00:00Z";
    r.system = {"jetson", "ARMv8 Processor rev 1 (v8l)", 6, "NVIDIA Orin (synthetic fixture)", 7ull << 30,
                (15ull << 30) / 2, "Ubuntu 22.04.4 LTS, Linux 5.15.136-tegra"};
    r.build = {"0.1.0", "abc1234", "g++ 12.2.0", "Release", true};
    r.settings.backends = {"native", "llama_cpp"};
    r.settings.models = {"synth-llama-q4_0.gguf", "synth-llama-q8_0.gguf"};
    r.settings.prompt_set = "builtin";
    r.settings.n_runs = 3;
    r.settings.n_warmup = 1;
    r.settings.n_predict = 64;
    r.settings.n_threads = 4;
    r.settings.n_ctx = 2048;
    r.settings.n_gpu_layers = 99;
    r.settings.seed = 1234;

    struct prompt {
        const char* id;
        int n_tokens;
    };
    const prompt prompts[] = {{"short", 12}, {"medium", 96}, {"long", 411}};
    const char* outputs[] = {
        "Edge AI runs models on the device itself, close to the sensor.",
        "Quantization stores weights in 4 or 8 bits: <script>alert(\"x\")</script> & 'quotes' stay text.",
        "A KV cache keeps past keys and values so each new token costs one step.\nSecond line.",
    };
    for (const char* backend : {"native", "llama_cpp"}) {
        bool native = std::string(backend) == "native";
        for (const auto& model : r.settings.models) {
            bool q8 = model.find("q8_0") != std::string::npos;
            double decode_base = (native ? 41.0 : 36.0) * (q8 ? 0.62 : 1.0);
            double prefill_base = (native ? 620.0 : 540.0) * (q8 ? 0.85 : 1.0);
            uint64_t rss_base = (q8 ? 820ull : 530ull) << 20;
            for (int pi = 0; pi < 3; ++pi) {
                for (int run = 0; run < 3; ++run) {
                    run_sample s;
                    s.backend = backend;
                    s.model = model;
                    s.prompt_id = prompts[pi].id;
                    s.run_index = run;
                    s.n_prompt_tokens = prompts[pi].n_tokens;
                    s.n_gen_tokens = 64 - pi * 7 - run;
                    s.prefill_tokens_per_s = prefill_base * (1.0 + 0.04 * rng.next()) / slowdown;
                    s.decode_tokens_per_s = decode_base * (1.0 + 0.05 * rng.next()) / slowdown;
                    s.ttft_ms = 1000.0 * s.n_prompt_tokens / s.prefill_tokens_per_s + (native ? 4.0 : 11.0);
                    s.latency_ms = s.ttft_ms + 1000.0 * (s.n_gen_tokens - 1) / s.decode_tokens_per_s;
                    s.output_sample = outputs[pi];
                    s.peak_rss_bytes = rss_base + (static_cast<uint64_t>(pi) << 22) + (native ? 0 : (96ull << 20));
                    s.gpu_mem_bytes = (q8 ? 900ull : 610ull) << 20;
                    s.cpu_pct = 110.0 + 30.0 * rng.next();
                    s.gpu_util_pct = 72.0 + 12.0 * rng.next();
                    if (native) s.energy_j_per_token = 0.21 * (q8 ? 1.4 : 1.0) * (1.0 + 0.03 * rng.next());
                    s.monitored_process = native ? "self" : "pid 4242 (llama-server)";
                    s.power_source = "nvml gpu";
                    int n_points = static_cast<int>(s.latency_ms / 50.0) + 2;
                    for (int k = 0; k < n_points; ++k) {
                        double t = k * 50.0;
                        double ramp = std::min(1.0, t / 120.0);
                        resource_point p;
                        p.t_ms = t;
                        p.rss_bytes = static_cast<uint64_t>(0.8 * s.peak_rss_bytes + 0.2 * s.peak_rss_bytes * ramp);
                        p.cpu_pct = t < s.ttft_ms ? 380.0 + 15.0 * res_rng.next() : s.cpu_pct + 10.0 * res_rng.next();
                        p.gpu_mem_bytes = static_cast<uint64_t>(s.gpu_mem_bytes * (0.9 + 0.1 * ramp));
                        p.gpu_util_pct = std::clamp(s.gpu_util_pct + 8.0 * res_rng.next(), 0.0, 100.0);
                        p.power_w = 7.5 + res_rng.next();
                        s.resources.push_back(p);
                    }
                    if (!native && !q8 && pi == 2 && run == 2) {
                        s.error = "llama-server: connection refused (127.0.0.1:8080)";
                        s.resources.clear();
                    }
                    r.samples.push_back(std::move(s));
                }
            }
        }
    }
    for (const char* backend : {"native", "llama_cpp"}) {
        bool native = std::string(backend) == "native";
        for (int threads : {2, 4}) {
            for (auto [n_prompt, n_gen] : {std::pair{64, 0}, std::pair{0, 32}, std::pair{64, 32}}) {
                micro_result m;
                m.backend = backend;
                m.model = "synth-llama-q4_0.gguf";
                m.n_prompt = n_prompt;
                m.n_gen = n_gen;
                m.n_threads = threads;
                m.n_batch = 512;
                m.n_gpu_layers = 0;
                double base = n_gen == 0 ? 300.0 : n_prompt == 0 ? 30.0 : 120.0;
                base *= (native ? 1.1 : 1.0) * (threads == 4 ? 1.7 : 1.0) / slowdown;
                for (int rep = 0; rep < 5; ++rep) m.tokens_per_s.push_back(base * (1.0 + 0.03 * rng.next()));
                r.micro.push_back(std::move(m));
            }
        }
    }
    for (const char* backend : {"native", "llama_cpp"}) {
        bool native = std::string(backend) == "native";
        for (const char* kind : {"batch", "concurrency"}) {
            if (native && std::string(kind) == "concurrency") continue;
            for (int n : {1, 2, 4, 8}) {
                sweep_point p;
                p.backend = backend;
                p.model = "synth-llama-q4_0.gguf";
                p.kind = kind;
                p.n_parallel = n;
                double per_request_ms = (native ? 1500.0 : 1750.0) * (1.0 + 0.22 * (n - 1)) * slowdown;
                for (int i = 0; i < n * 2; ++i) p.latency_ms.push_back(per_request_ms * (1.0 + 0.04 * rng.next()));
                p.wall_ms = per_request_ms * 2.0 * 1.02;
                p.n_gen_tokens = static_cast<int64_t>(n) * 2 * 64;
                r.sweeps.push_back(std::move(p));
            }
        }
    }
    return r;
}

std::string render(const bench_report& r, const std::string& format) {
    if (format == "json") return render_json(r);
    if (format == "csv") return render_csv(r);
    if (format == "md") return render_markdown(r);
    if (format == "html") return render_html(r);
    if (format == "console") return render_console(r);
    throw usage_error("unknown --format '" + format + "' (json, csv, md, html, console)");
}

int run(const std::vector<std::string>& args) {
    if (args.empty()) throw usage_error("usage: bench_report_tool write|convert|compare ...");
    std::string format = "console", out = "-";
    double slowdown = 1.0, threshold = 5.0;
    bool markdown = false;
    std::vector<std::string> positional;
    for (size_t i = 1; i < args.size(); ++i) {
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw usage_error(args[i] + " needs a value");
            return args[++i];
        };
        if (args[i] == "--format") format = value();
        else if (args[i] == "--out") out = value();
        else if (args[i] == "--slowdown") slowdown = std::stod(value());
        else if (args[i] == "--threshold") threshold = std::stod(value());
        else if (args[i] == "--markdown") markdown = true;
        else positional.push_back(args[i]);
    }
    if (args[0] == "write") {
        write_output(out, render(synthetic_report(slowdown), format));
        return 0;
    }
    if (args[0] == "convert" && positional.size() == 1) {
        write_output(out, render(load_report(positional[0]), format));
        return 0;
    }
    if (args[0] == "compare" && positional.size() == 2) {
        auto result = compare(load_report(positional[0]), load_report(positional[1]), threshold);
        write_output(out, render_compare(result, markdown));
        return result.n_regressions() ? 2 : 0;
    }
    throw usage_error("usage: bench_report_tool write|convert IN.json|compare A.json B.json ...");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
