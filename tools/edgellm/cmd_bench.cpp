// `edgellm bench`: prompt-set benchmark of backends x models (TTFT, prefill/decode tokens/s,
// latency, memory) with console, JSON, CSV, Markdown and HTML reports; `--compare A B`.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bench/compare.h"
#include "bench/html_report.h"
#include "bench/report_json.h"
#include "bench/report_text.h"
#include "bench/runner.h"
#include "command.h"
#include "core/error.h"
#include "core/timing.h"
#include "model/synth.h"

namespace edgellm::cli {
namespace {

struct bench_options {
    std::vector<std::string> backends = {"native"};
    std::vector<std::string> models;
    std::string synth = "tiny:q4_0";
    std::string prompts_file;
    int n_runs = 3;
    int n_warmup = 1;
    int n_predict = 64;
    double temperature = 0.0;
    uint64_t seed = 42;
    int n_threads = 0;
    int n_ctx = 0;
    int n_gpu_layers = -1;
    std::string url;
    std::vector<std::string> served;  // BACKEND=NAME
    double timeout_s = 300;
    std::string json_path, csv_path, md_path, html_path;
    std::vector<std::string> compare_paths;
    double threshold_pct = 5.0;
    bool quiet = false;
};

std::filesystem::path cache_dir() {
    if (const char* e = std::getenv("EDGELLM_CACHE_DIR"); e && *e) return e;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "edgellm";
    if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".cache" / "edgellm";
    return std::filesystem::temp_directory_path() / "edgellm-cache";
}

// The synthetic model used when no -m is given, generated once and cached.
std::string synth_model(const std::string& spec, bool quiet) {
    auto colon = spec.find(':');
    synth::options so;
    so.shape = spec.substr(0, colon);
    if (colon != std::string::npos) so.type = spec.substr(colon + 1);
    synth::find_shape(so.shape);
    synth::find_type_mix(so.type);
    auto dir = cache_dir();
    std::filesystem::create_directories(dir);
    auto path = dir / fmt::format("synth-{}-{}.gguf", so.shape, so.type);
    if (std::filesystem::exists(path)) return path.string();
    if (!quiet) std::fprintf(stderr, "generating synthetic model %s (cached for next time)\n", path.c_str());
    auto tmp = path;
    tmp += fmt::format(".tmp{}", getpid());
    synth::write_model(tmp.string(), so);
    std::filesystem::rename(tmp, path);
    return path.string();
}

class progress_display {
public:
    explicit progress_display(bool enabled) : enabled_(enabled), start_ms_(now_ms()) {}
    void operator()(const bench::progress_event& e) {
        if (e.what == "unavailable" || e.what == "failed") {
            clear();
            std::fprintf(stderr, "warning: %s / %s: %s\n", e.backend.c_str(), e.model.c_str(), e.message.c_str());
            return;
        }
        if (!enabled_) return;
        std::string eta;
        if (e.n_done > 0 && e.n_done < e.n_total) {
            double per_run_s = (now_ms() - start_ms_) / 1000.0 / static_cast<double>(e.n_done);
            eta = fmt::format("  ETA {:.0f}s", per_run_s * static_cast<double>(e.n_total - e.n_done));
        }
        std::string where = e.prompt_id.empty() ? e.what
                                                : fmt::format("{} {} {}", e.prompt_id, e.what, e.run_index + 1);
        std::string line = fmt::format("[{}/{}] {} / {}  {}{}", e.n_done, e.n_total, e.backend,
                                       std::filesystem::path(e.model).filename().string(), where, eta);
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        std::fflush(stderr);
        shown_ = true;
    }
    void clear() {
        if (shown_) std::fprintf(stderr, "\r\033[K");
        shown_ = false;
    }

private:
    bool enabled_;
    double start_ms_;
    bool shown_ = false;
};

void run_compare(const bench_options& o) {
    if (o.compare_paths.size() != 2) throw usage_error("--compare needs two report files: A.json (baseline) B.json");
    auto result = bench::compare(bench::load_report(o.compare_paths[0]), bench::load_report(o.compare_paths[1]),
                                 o.threshold_pct);
    std::fputs(bench::render_compare(result).c_str(), stdout);
    if (!o.md_path.empty()) bench::write_output(o.md_path, bench::render_compare(result, true));
    if (result.n_regressions()) exit_code() = 2;
}

void run_bench(bench_options o) {
    if (!o.compare_paths.empty()) return run_compare(o);
    bool no_outputs = o.json_path.empty() && o.csv_path.empty() && o.md_path.empty() && o.html_path.empty();
    if (o.models.empty()) {
        o.models.push_back(synth_model(o.synth, o.quiet));
        // The first-run experience: a table and a dashboard to open.
        if (no_outputs) o.html_path = "edgellm-bench.html";
    }
    bench::run_plan plan;
    plan.backends = o.backends;
    plan.models = o.models;
    if (!o.prompts_file.empty()) {
        plan.prompts = bench::load_prompts(o.prompts_file);
        plan.prompt_set = o.prompts_file;
    }
    plan.n_runs = o.n_runs;
    plan.n_warmup = o.n_warmup;
    plan.n_predict = o.n_predict;
    plan.temperature = o.temperature;
    plan.seed = o.seed;
    for (const auto& spec : o.served) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
            throw usage_error(fmt::format("--served-model wants BACKEND=NAME, got '{}'", spec));
        plan.served_model[spec.substr(0, eq)] = spec.substr(eq + 1);
    }
    plan.settings.n_threads = o.n_threads;
    plan.settings.n_ctx = o.n_ctx;
    plan.settings.n_gpu_layers = o.n_gpu_layers;
    plan.settings.base_url = o.url;
    plan.settings.timeout_s = o.timeout_s;

    progress_display display(!o.quiet && isatty(fileno(stderr)));
    auto report = bench::run_prompt_benchmark(plan, [&](const bench::progress_event& e) { display(e); });
    display.clear();

    // Any stdout report replaces the console table so that `--json -` pipes cleanly.
    bool stdout_taken = o.json_path == "-" || o.csv_path == "-" || o.md_path == "-" || o.html_path == "-";
    if (!stdout_taken) {
        std::fputs(bench::render_console(report).c_str(), stdout);
        std::fflush(stdout);
    }
    if (!o.json_path.empty()) bench::write_output(o.json_path, bench::render_json(report));
    if (!o.csv_path.empty()) bench::write_output(o.csv_path, bench::render_csv(report));
    if (!o.md_path.empty()) bench::write_output(o.md_path, bench::render_markdown(report));
    if (!o.html_path.empty()) bench::write_output(o.html_path, bench::render_html(report));
    if (!o.quiet && !stdout_taken)
        for (const auto& [what, path] : {std::pair{"JSON", o.json_path}, std::pair{"CSV", o.csv_path},
                                         std::pair{"Markdown", o.md_path}, std::pair{"HTML", o.html_path}})
            if (!path.empty()) std::fprintf(stderr, "%s report: %s\n", what, path.c_str());
    bool any_ok = std::any_of(report.samples.begin(), report.samples.end(), [](const auto& s) { return s.error.empty(); });
    if (!any_ok) throw error("bench: no run succeeded (see the errors above)");
}

void setup(CLI::App& app) {
    auto o = std::make_shared<bench_options>();
    CLI::App* cmd = app.add_subcommand("bench", "Benchmark and compare backends and models on this device");
    cmd->footer(
        "Examples:\n"
        "  edgellm bench                                   (native engine, cached synthetic model, HTML report)\n"
        "  edgellm bench --backends native -m model.gguf --runs 3 -n 64 --json r.json --html r.html\n"
        "  edgellm bench --backends native llama_cpp -m model.gguf --md -\n"
        "  edgellm bench --backends native openai -m m.gguf --url http://127.0.0.1:8000/v1 --served-model openai=m\n"
        "  edgellm bench --compare before.json after.json --threshold 5\n");
    cmd->add_option("--backends,--backend", o->backends, "backends to run (default: native; see `edgellm list`)");
    cmd->add_option("-m,--model,--models,--model-names", o->models,
                    "models: GGUF paths, Ollama tags, served names (default: a cached synthetic model)");
    cmd->add_option("--synth", o->synth,
                    "synthetic model used without -m, SHAPE:TYPE (default tiny:q4_0; small:q4_0 is SmolLM-135M-sized)");
    cmd->add_option("--prompts", o->prompts_file, "prompts file, one per line (\"id<TAB>text\" names one)");
    cmd->add_option("-r,--runs", o->n_runs, "measured runs per prompt (default 3)");
    cmd->add_option("--warmup", o->n_warmup, "unmeasured warm-up runs per prompt (default 1)");
    cmd->add_option("-n,--n-predict", o->n_predict, "tokens to generate per run (default 64)");
    cmd->add_option("--temp", o->temperature, "temperature (default 0: greedy, comparable runs)");
    cmd->add_option("-s,--seed", o->seed, "sampling seed (default 42)");
    cmd->add_option("-t,--threads", o->n_threads, "threads (default: backend/device default)");
    cmd->add_option("-c,--ctx-size", o->n_ctx, "context size (default: backend default)");
    cmd->add_option("--ngl,--n-gpu-layers", o->n_gpu_layers, "layers on the GPU (default: backend default)");
    cmd->add_option("--url", o->url, "base URL of an HTTP backend");
    cmd->add_option("--served-model", o->served,
                    "BACKEND=NAME: the name a server knows the -m model by (report keeps the -m label)");
    cmd->add_option("--timeout", o->timeout_s, "seconds any one request may take (default 300)");
    cmd->add_option("--json", o->json_path, "write the JSON report (schema edgellm.bench/v1); - = stdout");
    cmd->add_option("--csv", o->csv_path, "write CSV; - = stdout");
    cmd->add_option("--md", o->md_path, "write Markdown; - = stdout");
    cmd->add_option("--html", o->html_path, "write the HTML dashboard; - = stdout");
    cmd->add_option("--compare", o->compare_paths, "compare two JSON reports A (baseline) and B; exit 2 on regression")
        ->expected(2);
    cmd->add_option("--threshold", o->threshold_pct, "regression threshold in percent for --compare (default 5)");
    cmd->add_flag("-q,--quiet", o->quiet, "no progress display or notes on stderr");
    cmd->callback([o] { run_bench(*o); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("bench", 50, setup);

}  // namespace edgellm::cli
