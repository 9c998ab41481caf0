// Plain result structs of a benchmark: what was measured, where, and how. Runners fill them,
// reporters (console, JSON, CSV, Markdown, HTML) and compare() only read them.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::bench {

// Version tag written into every JSON report; bump when a field changes meaning.
inline constexpr const char* schema_version = "edgellm.bench/v1";

// The machine the benchmark ran on.
struct system_info {
    std::string device;  // device class: "cpu", "cuda", "jetson", "apple_silicon", ...
    std::string cpu;     // CPU model name
    int n_cpu_cores = 0;
    std::string gpu;     // GPU name, empty when there is none
    uint64_t gpu_mem_total_bytes = 0;
    uint64_t ram_total_bytes = 0;
    std::string os;      // "Debian GNU/Linux 12 (bookworm), Linux 6.1"
    // Main-memory read bandwidth measured at the start of the benchmark (one thread streaming
    // a buffer larger than the caches); 0 = not measured. Bounds decode speed (bench/sanity.h).
    double mem_bandwidth_bytes_per_s = 0;
};

// The edgellm binary that measured.
struct build_info {
    std::string version;
    std::string commit;      // git commit, empty when unknown
    std::string compiler;    // "g++ 12.2.0"
    std::string build_type;  // "Release"
    bool cuda = false;          // CUDA kernels compiled in (src/kernels/cuda)
    bool cuda_offload = false;  // ... and a CUDA device was found, so -ngl can offload layers
};

// How the benchmark was asked to run (the CLI's flags after defaults were applied).
struct bench_settings {
    std::string mode = "prompts";  // "prompts" (prompt set), "micro" (llama-bench style), "sweep"
    std::vector<std::string> backends;
    std::vector<std::string> models;
    std::string prompt_set;  // "builtin" or the prompts file
    int n_runs = 0;          // measured runs per prompt
    int n_warmup = 0;        // unmeasured runs before them
    int n_predict = 0;       // max generated tokens per run
    int n_threads = 0;       // 0 = backend default
    int n_ctx = 0;
    int n_gpu_layers = 0;
    uint64_t seed = 0;
    double temperature = 0.0;
    // The backend options the runs used, beyond the fields above (backend_settings::extra:
    // "deterministic", "model_draft", "draft_max", "memory_limit", "no_fallback" ...), so a
    // report says how its figures were obtained.
    std::map<std::string, std::string> options;
};

// One point of the resource monitor's time series, relative to the start of the run. The
// process figures are those of run_sample::monitored_process (0 / NaN when there is none).
struct resource_point {
    double t_ms = 0.0;
    uint64_t rss_bytes = 0;
    double cpu_pct = 0.0;        // of one core, so 4 busy cores read 400; NaN: not measured
    uint64_t gpu_mem_bytes = 0;  // used on all GPUs (device-wide); 0: no GPU reading
    double gpu_util_pct = std::numeric_limits<double>::quiet_NaN();  // the busiest GPU; NaN: no reading
    std::optional<double> power_w;  // see run_sample::power_source
};

// One measured generation: one prompt, one backend, one model, one repetition.
struct run_sample {
    std::string backend;
    std::string model;
    std::string prompt_id;
    int run_index = 0;  // 0-based among the measured runs (warm-up runs are not recorded)
    // Timings by edgellm's own clock (every backend): TTFT = request sent -> first streamed
    // piece; prefill = prompt tokens / TTFT; decode = (generated tokens - 1) / (last piece -
    // first piece). The native engine times its own prefill and decode passes. NaN: not
    // measured (e.g. decode of a run with fewer than 2 generated tokens; see notes).
    double ttft_ms = 0.0;  // request sent -> first generated token received
    double prefill_tokens_per_s = 0.0;
    double decode_tokens_per_s = 0.0;
    double latency_ms = 0.0;  // request sent -> last token received
    // What the server itself reported (llama-server `timings`, Ollama durations), shown beside
    // edgellm's figures; nullopt when it reported nothing usable.
    std::optional<double> server_prefill_tokens_per_s;
    std::optional<double> server_decode_tokens_per_s;
    // Non-empty pieces of text the backend streamed; -1 = not recorded. A backend cannot
    // stream more pieces than it generated tokens.
    int n_gen_pieces = -1;
    // Size of the model file (a bound on the weight bytes read per decoded token); 0 = unknown
    // (a server-side model name).
    uint64_t model_bytes = 0;
    // Why a figure is missing or how it was measured ("decode: 1 token generated, no decode
    // interval", "cpu_pct: ...").
    std::vector<std::string> notes;
    int n_prompt_tokens = 0;
    int n_gen_tokens = 0;
    std::string output_sample;  // start of the generated text
    // Counted from streamed pieces because the backend reported no token count (an estimate).
    bool n_gen_tokens_estimated = false;
    uint64_t peak_rss_bytes = 0;  // of monitored_process (or as the backend reported); 0: unknown
    uint64_t gpu_mem_bytes = 0;   // peak GPU memory used, device-wide; 0 when none or unknown
    // Mean over the run, of monitored_process; NaN (the default): not measured.
    double cpu_pct = std::numeric_limits<double>::quiet_NaN();
    double gpu_util_pct = std::numeric_limits<double>::quiet_NaN();  // mean over the run; NaN: no reading
    // Joules drawn during the run (trapezoid integral of power_w) / n_gen_tokens; only where
    // power is measurable (see power_source). Device-wide: other load on the device counts too.
    std::optional<double> energy_j_per_token;
    std::optional<double> draft_acceptance;  // speculative decoding: accepted / drafted tokens
    std::optional<double> energy_j;      // the integral itself
    std::optional<double> mean_power_w;  // mean of the power readings of the run
    // Where power came from: "jetson board" (VDD_IN), "nvml gpu", "rapl cpu package",
    // "nvml gpu + rapl cpu package"; empty when none was readable.
    std::string power_source;
    // Whose RSS and CPU were sampled: "self" (in-process backend), "pid 1234 (python3)" (the
    // server or worker), empty when no process could be followed (then they are not measured).
    std::string monitored_process;
    // The backend's load_note(): how the load departed from the request (a fallback rung).
    std::string load_note;
    std::vector<resource_point> resources;
    std::string error;  // non-empty when the run failed; its metrics are then not used
};

// llama-bench style test: ppN (prefill N tokens), tgN (generate N), ppN+tgM, repeated.
struct micro_result {
    std::string backend;
    std::string model;
    int n_prompt = 0;
    int n_gen = 0;
    int n_threads = 0;
    int n_batch = 0;
    int n_gpu_layers = 0;
    int n_depth = 0;  // tokens already in the context before the test
    std::vector<double> tokens_per_s;  // one per repetition
    std::string error;
};

// Test name in llama-bench's notation: "pp512", "tg128", "pp512+tg128", "... @ d1024".
std::string micro_test_name(const micro_result& m);

// One point of a batch-size or concurrency sweep.
struct sweep_point {
    std::string backend;
    std::string model;
    std::string kind = "batch";  // "batch" (sequences in one forward pass) or "concurrency"
    int n_parallel = 1;          // batch size or number of concurrent requests
    std::vector<double> latency_ms;  // per request
    double wall_ms = 0.0;            // first request sent -> last response done
    int64_t n_gen_tokens = 0;        // over all requests
    std::string error;
};

// Generated tokens per second over all requests of the sweep point (0 when nothing ran).
double aggregate_tokens_per_s(const sweep_point& p);

// How reports show a model: the file name of a path ("/models/m.gguf" -> "m.gguf"), other
// names (Ollama tags, served ids) as they are. The JSON keeps the name as given.
std::string model_label(const std::string& model);

// Replaces every invalid UTF-8 sequence with U+FFFD, so reports stay valid text when a model
// emits a partial multi-byte character (byte-fallback tokens).
std::string sanitize_utf8(std::string_view text);

// Current time as ISO 8601 UTC ("2026-11-28T02:00:00Z"), for bench_report::created_utc.
std::string utc_now_iso8601();

// Everything one `edgellm bench` invocation produced.
struct bench_report {
    std::string schema = schema_version;
    std::string created_utc;  // ISO 8601, "2026-11-28T02:00:00Z"
    system_info system;
    build_info build;
    bench_settings settings;
    std::vector<run_sample> samples;
    std::vector<micro_result> micro;
    std::vector<sweep_point> sweeps;
};

}  // namespace edgellm::bench
