// `edgellm bench`: prompt-set benchmark of backends x models (TTFT, prefill/decode tokens/s,
// latency, memory), llama-bench style micro tests (-p/-n/-pg lists), batch and concurrency
// sweeps, with console, JSON, CSV, Markdown and HTML reports; `--compare A B`.
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <tuple>

#include "bench/chat_turns.h"
#include "bench/embed_bench.h"
#include "bench/compare.h"
#include "bench/html_report.h"
#include "bench/micro_runner.h"
#include "bench/report_json.h"
#include "bench/report_text.h"
#include "bench/runner.h"
#include "bench/sweep_runner.h"
#include "command.h"
#include "core/error.h"
#include "core/timing.h"
#include "core/units.h"
#include "model/synth.h"

namespace edgellm::cli {
namespace {

struct bench_options {
    std::vector<std::string> backends = {"native"};
    std::vector<std::string> models;
    bool pair = false;  // the i-th backend runs the i-th model
    std::string synth = "tiny:q4_0";
    std::string model_draft;  // native: speculative decoding
    int draft_max = 16;
    std::string memory_limit;  // native, prompt mode: budget for weights + KV (the fallback chain applies)
    bool no_fallback = false;
    bool deterministic = false;
    std::string prompts_file;
    std::optional<int> n_runs;  // default: 3 (prompts, sweeps) or 5 (micro, like llama-bench)
    int n_warmup = 1;
    // Lists as given ("128,512"); parsed once the mode is known, since -n is n_predict in prompt
    // and sweep mode but the list of tgN tests in micro mode.
    std::string n_predict, n_prompt, threads, batch, gpu_layers, depth;
    std::vector<std::string> pg;
    std::string batch_sizes, concurrency;
    double temperature = 0.0;
    uint64_t seed = 42;
    bool chat = false;  // prompt mode: each prompt as a user chat message
    int chat_turns = 0;  // > 0: the multi-turn chat workload (bench/chat_turns.h)
    bool embed = false;  // the embeddings throughput workload (bench/embed_bench.h)
    int embed_inputs = 128;
    std::string embed_file, embed_save;
    int n_ctx = 0;
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
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
        return std::filesystem::path(x) / "edgellm";
    if (const char* h = std::getenv("HOME"); h && *h)
        return std::filesystem::path(h) / ".cache" / "edgellm";
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
    if (!quiet)
        std::fprintf(stderr, "generating synthetic model %s (cached for next time)\n",
                     path.c_str());
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
            std::fprintf(stderr, "warning: %s / %s: %s\n", e.backend.c_str(), e.model.c_str(),
                         e.message.c_str());
            return;
        }
        if (!enabled_) return;
        std::string eta;
        if (e.n_done > 0 && e.n_done < e.n_total) {
            double per_run_s = (now_ms() - start_ms_) / 1000.0 / static_cast<double>(e.n_done);
            eta =
                fmt::format("  ETA {:.0f}s", per_run_s * static_cast<double>(e.n_total - e.n_done));
        }
        std::string where = e.prompt_id.empty()
                                ? e.what
                                : fmt::format("{} {} {}", e.prompt_id, e.what, e.run_index + 1);
        std::string line =
            fmt::format("[{}/{}] {} / {}  {}{}", e.n_done, e.n_total, e.backend,
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
    if (o.compare_paths.size() != 2)
        throw usage_error("--compare needs two report files: A.json (baseline) B.json");
    auto result = bench::compare(bench::load_report(o.compare_paths[0]),
                                 bench::load_report(o.compare_paths[1]), o.threshold_pct);
    std::fputs(bench::render_compare(result).c_str(), stdout);
    if (!o.md_path.empty()) bench::write_output(o.md_path, bench::render_compare(result, true));
    if (result.n_regressions()) exit_code() = 2;
}

// A flag that takes one value outside micro mode (lists are for micro tests).
int single_value(const std::string& text, const std::string& flag, int min_value, int fallback) {
    if (text.empty()) return fallback;
    auto v = bench::parse_int_list(text, flag, min_value);
    if (v.size() != 1)
        throw usage_error(fmt::format(
            "{} takes one value here, got '{}'; value lists are for micro tests (-p/-pg)", flag,
            text));
    return v[0];
}

std::map<std::string, std::string> served_models(const bench_options& o) {
    std::map<std::string, std::string> out;
    for (const auto& spec : o.served) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
            throw usage_error(fmt::format("--served-model wants BACKEND=NAME, got '{}'", spec));
        out[spec.substr(0, eq)] = spec.substr(eq + 1);
    }
    return out;
}

bench::micro_plan micro_plan_of(const bench_options& o) {
    bench::micro_plan mp;
    mp.backends = o.backends;
    mp.models = o.models;
    mp.pair_models = o.pair;
    mp.served_model = served_models(o);
    if (!o.n_prompt.empty()) mp.n_prompt = bench::parse_int_list(o.n_prompt, "-p", 1);
    if (!o.n_predict.empty()) mp.n_gen = bench::parse_int_list(o.n_predict, "-n", 1);
    for (const auto& pg : o.pg) mp.pg.push_back(bench::parse_pg_pair(pg));
    if (!o.threads.empty()) mp.n_threads = bench::parse_int_list(o.threads, "-t", 1);
    if (!o.batch.empty()) mp.n_batch = bench::parse_int_list(o.batch, "-b", 1);
    if (!o.gpu_layers.empty()) mp.n_gpu_layers = bench::parse_int_list(o.gpu_layers, "-ngl", 0);
    if (!o.depth.empty()) mp.n_depth = bench::parse_int_list(o.depth, "-d", 0);
    mp.threads_given = !o.threads.empty();
    mp.batch_given = !o.batch.empty();
    mp.ngl_given = !o.gpu_layers.empty();
    mp.n_reps = o.n_runs.value_or(5);
    mp.seed = o.seed;
    mp.settings.n_ctx = o.n_ctx;
    mp.settings.base_url = o.url;
    mp.settings.timeout_s = o.timeout_s;
    return mp;
}

backends::backend_settings single_settings(const bench_options& o) {
    backends::backend_settings s;
    s.n_threads = single_value(o.threads, "-t", 1, 0);
    s.n_batch = single_value(o.batch, "-b", 1, 0);
    s.n_gpu_layers = single_value(o.gpu_layers, "-ngl", 0, -1);
    s.n_ctx = o.n_ctx;
    s.base_url = o.url;
    s.timeout_s = o.timeout_s;
    if (!o.model_draft.empty()) {
        s.extra["model_draft"] = o.model_draft;
        s.extra["draft_max"] = std::to_string(o.draft_max);
    }
    if (!o.memory_limit.empty()) {
        parse_size(o.memory_limit, "--memory-limit");  // validated before anything loads
        s.extra["memory_limit"] = o.memory_limit;
    }
    if (o.no_fallback) s.extra["no_fallback"] = "1";
    if (o.deterministic) s.extra["deterministic"] = "1";
    return s;
}

bench::bench_report run_sweeps(const bench_options& o, const bench::progress_callback& progress) {
    bench::sweep_plan sp;
    sp.backends = o.backends;
    sp.models = o.models;
    sp.pair_models = o.pair;
    sp.served_model = served_models(o);
    if (!o.prompts_file.empty()) sp.prompt = bench::load_prompts(o.prompts_file).front();
    sp.n_predict = single_value(o.n_predict, "-n", 1, 64);
    sp.n_runs = o.n_runs.value_or(3);
    sp.temperature = o.temperature;
    sp.seed = o.seed;
    sp.settings = single_settings(o);
    bench::bench_report report;
    bool first = true;
    for (const auto& [kind, list, flag] :
         {std::tuple{"batch", o.batch_sizes, "--batch-sizes"},
          std::tuple{"concurrency", o.concurrency, "--concurrency"}}) {
        if (list.empty()) continue;
        sp.kind = kind;
        sp.sizes = bench::parse_int_list(list, flag, 1);
        auto r = bench::run_sweep_benchmark(sp, progress);
        if (first)
            report = std::move(r);
        else
            report.sweeps.insert(report.sweeps.end(), r.sweeps.begin(), r.sweeps.end());
        first = false;
    }
    return report;
}

bench::bench_report run_prompts(const bench_options& o, const bench::progress_callback& progress) {
    bench::run_plan plan;
    plan.backends = o.backends;
    plan.models = o.models;
    plan.pair_models = o.pair;
    if (!o.prompts_file.empty()) {
        plan.prompts = bench::load_prompts(o.prompts_file);
        plan.prompt_set = o.prompts_file;
    }
    plan.n_runs = o.n_runs.value_or(3);
    plan.n_warmup = o.n_warmup;
    plan.n_predict = single_value(o.n_predict, "-n", 1, 64);
    plan.temperature = o.temperature;
    plan.seed = o.seed;
    plan.chat = o.chat;
    if (o.chat) plan.prompt_set += " (as chat messages)";
    plan.served_model = served_models(o);
    plan.settings = single_settings(o);
    return bench::run_prompt_benchmark(plan, progress);
}

// --chat-turns N: one growing conversation per run, TTFT per turn (its own table).
void run_chat_turns(const bench_options& o) {
    if (!o.n_prompt.empty() || !o.pg.empty() || !o.batch_sizes.empty() || !o.concurrency.empty() || o.chat ||
        !o.prompts_file.empty())
        throw usage_error("--chat-turns is a workload of its own: it does not combine with -p/-pg, sweeps, --chat or "
                          "--prompts");
    if (!o.csv_path.empty() || !o.html_path.empty() || !o.json_path.empty())
        throw usage_error("--chat-turns writes a console table or Markdown (--md); not JSON, CSV or HTML");
    bench::chat_turns_plan plan;
    plan.backends = o.backends;
    plan.models = o.models;
    plan.pair_models = o.pair;
    plan.served_model = served_models(o);
    plan.n_turns = o.chat_turns;
    plan.n_runs = o.n_runs.value_or(3);
    plan.n_predict = single_value(o.n_predict, "-n", 1, 48);
    plan.temperature = o.temperature;
    plan.seed = o.seed;
    plan.settings = single_settings(o);
    if (plan.models.empty()) plan.models.push_back("");  // an HTTP backend's served model
    progress_display display(!o.quiet && isatty(fileno(stderr)));
    auto samples = bench::run_chat_turns(plan, [&](const bench::progress_event& e) { display(e); });
    display.clear();
    if (o.md_path != "-") std::fputs(bench::render_chat_turns(samples).c_str(), stdout);
    if (!o.md_path.empty()) bench::write_output(o.md_path, bench::render_chat_turns(samples, true));
    if (std::none_of(samples.begin(), samples.end(), [](const auto& s) { return s.error.empty(); }))
        throw error("bench: no turn succeeded (see the errors above)");
}

// --embed: embeddings throughput, inputs/s and tokens/s per backend (its own table).
void run_embed(const bench_options& o) {
    if (!o.n_prompt.empty() || !o.pg.empty() || !o.batch_sizes.empty() || !o.concurrency.empty() || o.chat ||
        o.chat_turns != 0 || !o.prompts_file.empty())
        throw usage_error("--embed is a workload of its own: it does not combine with -p/-pg, sweeps, --chat, "
                          "--chat-turns or --prompts (give the inputs with --embed-file)");
    if (!o.csv_path.empty() || !o.html_path.empty())
        throw usage_error("--embed writes a console table, Markdown (--md) or JSON (--json); not CSV or HTML");
    if (o.models.empty()) throw usage_error("--embed needs a model: -m MODEL.gguf (an encoder or a decoder)");
    bench::embed_plan plan;
    plan.backends = o.backends;
    plan.models = o.models;
    plan.pair_models = o.pair;
    plan.n_runs = o.n_runs.value_or(3);
    if (plan.n_runs < 1) throw usage_error(fmt::format("--runs must be at least 1, got {}", plan.n_runs));
    plan.n_warmup = o.n_warmup;
    plan.settings = single_settings(o);
    if (!o.embed_file.empty()) {
        std::ifstream in(o.embed_file);
        if (!in) throw usage_error(fmt::format("--embed-file '{}' cannot be read", o.embed_file));
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) plan.inputs.push_back(line);
        if (plan.inputs.empty()) throw usage_error(fmt::format("--embed-file '{}' has no lines", o.embed_file));
    } else {
        if (o.embed_inputs < 1)
            throw usage_error(fmt::format("--embed-inputs must be at least 1, got {}", o.embed_inputs));
        plan.inputs = bench::embed_inputs(o.embed_inputs, o.seed);
    }
    if (!o.embed_save.empty()) {
        std::string text;
        for (const auto& t : plan.inputs) text += t + "\n";
        bench::write_output(o.embed_save, text);
    }
    progress_display display(!o.quiet && isatty(fileno(stderr)));
    auto samples = bench::run_embed_benchmark(plan, [&](const bench::progress_event& e) { display(e); });
    display.clear();
    if (o.md_path != "-" && o.json_path != "-") std::fputs(bench::render_embed(samples, plan).c_str(), stdout);
    if (!o.md_path.empty()) bench::write_output(o.md_path, bench::render_embed(samples, plan, true));
    if (!o.json_path.empty()) bench::write_output(o.json_path, bench::embed_json(samples, plan));
    if (std::none_of(samples.begin(), samples.end(), [](const auto& s) { return s.error.empty(); }))
        throw error("bench: no backend embedded the inputs (see the errors above)");
}

void run_bench(bench_options o) {
    if (!o.compare_paths.empty()) return run_compare(o);
    if (o.embed) return run_embed(o);
    if (o.chat_turns != 0) return run_chat_turns(o);
    const bool micro = !o.n_prompt.empty() || !o.pg.empty();
    const bool sweep = !o.batch_sizes.empty() || !o.concurrency.empty();
    if (o.chat && (micro || sweep))
        throw usage_error("--chat applies to prompt mode (the built-in or --prompts prompts), not to micro "
                          "tests (-p/-pg) or sweeps");
    if (micro && sweep)
        throw usage_error(
            "micro tests (-p/-pg) and sweeps (--batch-sizes/--concurrency) are separate runs; give "
            "one or the other");
    if ((micro || sweep) && (!o.memory_limit.empty() || o.no_fallback))
        throw usage_error("--memory-limit and --no-fallback apply to prompt mode (the micro tests and sweeps size "
                          "their own context)");
    if (micro && o.deterministic)
        throw usage_error("--deterministic applies to prompt mode and sweeps (the native backend), not to micro "
                          "tests (-p/-pg)");
    if (!micro && !o.depth.empty())
        throw usage_error("-d (context depth) applies to micro tests; add -p N or -pg N,M");
    if (o.n_runs && *o.n_runs <= 0)
        throw usage_error(
            fmt::format("--runs must be at least 1 (also spelled --reps), got {}", *o.n_runs));
    // Validate every list before a model is generated or loaded.
    if (micro)
        micro_plan_of(o);
    else
        single_settings(o);
    bool no_outputs =
        o.json_path.empty() && o.csv_path.empty() && o.md_path.empty() && o.html_path.empty();
    if (o.models.empty()) {
        o.models.push_back(synth_model(o.synth, o.quiet));
        // The first-run experience: a table and a dashboard to open.
        if (no_outputs) o.html_path = "edgellm-bench.html";
    }

    progress_display display(!o.quiet && isatty(fileno(stderr)));
    auto on_progress = [&](const bench::progress_event& e) { display(e); };
    bench::bench_report report = micro   ? bench::run_micro_benchmark(micro_plan_of(o), on_progress)
                                 : sweep ? run_sweeps(o, on_progress)
                                         : run_prompts(o, on_progress);
    display.clear();

    // Any stdout report replaces the console table so that `--json -` pipes cleanly.
    bool stdout_taken =
        o.json_path == "-" || o.csv_path == "-" || o.md_path == "-" || o.html_path == "-";
    if (!stdout_taken) {
        std::fputs(bench::render_console(report).c_str(), stdout);
        std::fflush(stdout);
    }
    if (!o.json_path.empty()) bench::write_output(o.json_path, bench::render_json(report));
    if (!o.csv_path.empty()) bench::write_output(o.csv_path, bench::render_csv(report));
    if (!o.md_path.empty()) bench::write_output(o.md_path, bench::render_markdown(report));
    if (!o.html_path.empty()) bench::write_output(o.html_path, bench::render_html(report));
    if (!o.quiet && !stdout_taken)
        for (const auto& [what, path] :
             {std::pair{"JSON", o.json_path}, std::pair{"CSV", o.csv_path},
              std::pair{"Markdown", o.md_path}, std::pair{"HTML", o.html_path}})
            if (!path.empty()) std::fprintf(stderr, "%s report: %s\n", what, path.c_str());
    auto ok = [](const auto& x) { return x.error.empty(); };
    bool any_ok = micro   ? std::any_of(report.micro.begin(), report.micro.end(), ok)
                  : sweep ? std::any_of(report.sweeps.begin(), report.sweeps.end(), ok)
                          : std::any_of(report.samples.begin(), report.samples.end(), ok);
    if (!any_ok) throw error("bench: no run succeeded (see the errors above)");
}

void add_options(CLI::App& cmd, bench_options& o) {
    cmd.footer(
        "Examples:\n"
        "  edgellm bench                                   (native engine, cached synthetic model, "
        "HTML report)\n"
        "  edgellm bench --backends native -m model.gguf --runs 3 -n 64 --json r.json --html "
        "r.html\n"
        "  edgellm bench --backends native llama_cpp -m model.gguf --md -\n"
        "  edgellm bench --backends native openai -m m.gguf --url http://127.0.0.1:8000/v1 "
        "--served-model openai=m\n"
        "  edgellm bench --backends llama_cpp ollama -m model.gguf llama2:7b-chat --pair\n"
        "  edgellm bench --compare before.json after.json --threshold 5\n"
        "  edgellm bench --embed -m minilm.gguf --backends native llama_cpp_python -t 2   (embeddings "
        "inputs/s, tokens/s)\n"
        "Micro tests (llama-bench style; every flag takes a comma list, every combination runs):\n"
        "  edgellm bench -m model.gguf -p 512 -n 128                (pp512 and tg128, 5 "
        "repetitions)\n"
        "  edgellm bench -m model.gguf -pg 512,128 -t 1,2,4 -d 0,1024 -r 3\n"
        "Sweeps:\n"
        "  edgellm bench -m model.gguf --batch-sizes 1,2,4,8 -n 32    (native: sequences decoded "
        "together)\n"
        "  edgellm bench --backends openai -m m.gguf --url http://127.0.0.1:8000/v1 --concurrency "
        "1,2,4,8\n");
    cmd.add_option("--backends,--backend", o.backends,
                   "backends to run (default: native; see `edgellm list`)");
    cmd.add_option(
        "-m,--model,--models,--model-names", o.models,
        "models: GGUF paths, Ollama tags, served names (default: a cached synthetic model)");
    cmd.add_flag("--pair", o.pair,
                 "run the i-th backend with the i-th model only (a single model or backend pairs with all), instead of every "
                 "combination; implied by the seed's `edgellm --benchmark` form");
    cmd.add_option("--model-draft", o.model_draft,
                   "native backend: speculative decoding with this draft model (prompt mode; a 'draft accepted %' "
                   "column is added)");
    cmd.add_option("--draft-max", o.draft_max, "tokens drafted per verification with --model-draft")->capture_default_str();
    cmd.add_option("--memory-limit", o.memory_limit,
                   "native backend, prompt mode: memory the weights + KV cache may take (e.g. 6G); what does not "
                   "fit takes the fallback chain as in `run`, and the rung taken is reported");
    cmd.add_flag("--no-fallback", o.no_fallback, "native backend: refuse a request that does not fit instead of falling back");
    cmd.add_flag("--deterministic", o.deterministic,
                 "native backend: batch-invariant kernels (a sequence's output does not depend on its batch; "
                 "prompt mode and sweeps)");
    cmd.add_option("--synth", o.synth,
                   "synthetic model used without -m, SHAPE:TYPE (default tiny:q4_0; small:q4_0 is "
                   "SmolLM-135M-sized)");
    cmd.add_option("--prompts", o.prompts_file,
                   "prompts file, one per line (\"id<TAB>text\" names one); sweeps use the first");
    cmd.add_option("-r,--runs,--reps,--repetitions", o.n_runs,
                   "measured runs per prompt / sweep point (default 3), repetitions per micro test "
                   "(default 5)");
    cmd.add_option("--warmup", o.n_warmup, "unmeasured warm-up runs per prompt (default 1)");
    cmd.add_option("-n,--n-predict,--n-gen", o.n_predict,
                   "tokens to generate per run (default 64); with -p/-pg: the tgN micro tests, a "
                   "list (e.g. 32,128)");
    cmd.add_option("-p,--n-prompt", o.n_prompt,
                   "micro mode: ppN prefill tests, a list (e.g. 128,512)");
    cmd.add_option("--pg", o.pg, "micro mode: ppN+tgM tests as N,M (also spelled -pg; repeatable)");
    cmd.add_option("-d,--n-depth,--depth", o.depth,
                   "micro mode: tokens already in the context before each test, a list");
    cmd.add_option("--temp", o.temperature, "temperature (default 0: greedy, comparable runs)");
    cmd.add_flag("--chat", o.chat,
                 "prompt mode: send each prompt as a user chat message, formatted by each backend with the "
                 "model's chat template (instruct models answer instead of ending at once on a bare prompt)");
    cmd.add_option("--chat-turns", o.chat_turns,
                   "multi-turn chat workload: N user turns per conversation, each request resending the history "
                   "(as chat UIs do); reports the time to first token of every turn (--runs conversations)");
    cmd.add_flag("--embed", o.embed,
                 "embeddings workload: --embed-inputs texts of mixed lengths embedded by each backend (native, "
                 "llama_cpp_python); reports inputs/s and tokens/s, model loading excluded");
    cmd.add_option("--embed-inputs", o.embed_inputs,
                   "--embed: how many generated inputs (6 to 96 words each, drawn with --seed; default 128)");
    cmd.add_option("--embed-file", o.embed_file, "--embed: the inputs, one per line, instead of generated ones");
    cmd.add_option("--embed-save-inputs", o.embed_save,
                   "--embed: also write the inputs used, one per line (to time other tools on the same set)");
    cmd.add_option("-s,--seed", o.seed, "sampling seed (default 42; --embed: the inputs' seed)");
    cmd.add_option("-t,--threads", o.threads,
                   "threads (default: backend/device default; a list in micro mode)");
    cmd.add_option("-b,--batch-size", o.batch, "tokens per prefill step (a list in micro mode)");
    cmd.add_option("-c,--ctx-size", o.n_ctx, "context size (default: backend default)");
    cmd.add_option(
        "--ngl,--n-gpu-layers", o.gpu_layers,
        "layers on the GPU (default: backend default; also spelled -ngl; a list in micro mode)");
    cmd.add_option("--batch-sizes", o.batch_sizes,
                   "sweep: sequences decoded together (native), e.g. 1,2,4,8");
    cmd.add_option("--concurrency", o.concurrency,
                   "sweep: parallel requests to one server (HTTP backends), e.g. 1,2,4,8");
    cmd.add_option("--url", o.url, "base URL of an HTTP backend");
    cmd.add_option(
        "--served-model", o.served,
        "BACKEND=NAME: the name a server knows the -m model by (report keeps the -m label)");
    cmd.add_option("--timeout", o.timeout_s, "seconds any one request may take (default 300)");
    cmd.add_option("--json", o.json_path,
                   "write the JSON report (schema edgellm.bench/v1); - = stdout");
    cmd.add_option("--csv", o.csv_path, "write CSV; - = stdout");
    cmd.add_option("--md", o.md_path, "write Markdown; - = stdout");
    cmd.add_option("--html", o.html_path, "write the HTML dashboard; - = stdout");
    cmd.add_option("--compare", o.compare_paths,
                   "compare two JSON reports A (baseline) and B; exit 2 on regression")
        ->expected(2);
    cmd.add_option("--threshold", o.threshold_pct,
                   "regression threshold in percent for --compare (default 5)");
    cmd.add_flag("-q,--quiet", o.quiet, "no progress display or notes on stderr");
}

// llama-bench spells some flags with one dash and several letters (-pg, -ngl), which CLI11 reads
// as a short option with an attached value (-p "g"); spell them with two dashes before parsing.
std::vector<std::string> normalise_llama_bench_flags(std::vector<std::string> args) {
    for (auto& a : args) {
        if (a == "-pg" || a == "-ngl")
            a = "-" + a;
        else if (a.rfind("-pg=", 0) == 0 || a.rfind("-ngl=", 0) == 0)
            a = "-" + a;
    }
    return args;
}

void setup(CLI::App& app) {
    CLI::App* cmd =
        app.add_subcommand("bench", "Benchmark and compare backends and models on this device");
    // The flags are parsed by an inner parser (see normalise_llama_bench_flags), so this
    // subcommand only collects its arguments; --help is answered by the inner parser too.
    cmd->prefix_command();
    cmd->set_help_flag();
    cmd->callback([cmd] {
        bench_options o;
        CLI::App inner{"Benchmark and compare backends and models on this device", "edgellm bench"};
        add_options(inner, o);
        std::vector<std::string> args = normalise_llama_bench_flags(cmd->remaining());
        std::reverse(args.begin(), args.end());  // CLI11 takes the vector in reverse order
        try {
            inner.parse(args);
        } catch (const CLI::CallForHelp&) {
            std::fputs(inner.help().c_str(), stdout);
            return;
        } catch (const CLI::ParseError& e) {
            throw usage_error(fmt::format("bench: {} (see edgellm bench --help)", e.what()));
        }
        run_bench(std::move(o));
    });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("bench", 50, setup);

}  // namespace edgellm::cli
