// Prompt-set benchmark runner: prompts x runs x backends x models through the Backend
// interface, after warm-up, with the resource monitor, producing a bench_report.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "bench/result.h"
#include "device/nvml.h"

namespace edgellm::bench {

struct prompt_case {
    std::string id;
    std::string text;
};

// Built-in prompts of varied lengths: "short", "medium", "long".
const std::vector<prompt_case>& builtin_prompts();
// One prompt per non-empty line ("id<TAB>text" names it, else p1, p2, ...). Throws on an
// unreadable or empty file.
std::vector<prompt_case> load_prompts(const std::string& path);

// The (backend, model) combinations a benchmark runs: every backend with every model, or with
// `paired` the i-th backend with the i-th model (a single model goes to every backend, a single
// backend runs every model). Throws usage_error when paired counts differ otherwise.
std::vector<std::pair<std::string, std::string>> backend_model_pairs(const std::vector<std::string>& backends,
                                                                      const std::vector<std::string>& models,
                                                                      bool paired);

struct run_plan {
    std::vector<std::string> backends = {"native"};
    std::vector<std::string> models;  // every backend runs every model, unless pair_models
    // The i-th backend runs the i-th model only (the seed's `--benchmark --backends A B
    // --model-names M N`, its compare_backends pairs); see backend_model_pairs.
    bool pair_models = false;
    // Backend -> the name that backend knows the model by (an Ollama tag, a server's model id),
    // so a GGUF run natively and the same file behind a server share one report label. Only
    // with a single model.
    std::map<std::string, std::string> served_model;
    std::vector<prompt_case> prompts = builtin_prompts();
    std::string prompt_set = "builtin";
    int n_runs = 3;
    int n_warmup = 1;
    int n_predict = 64;
    double temperature = 0.0;
    uint64_t seed = 42;
    // Send each prompt as one user chat message (each backend applies the model's chat template),
    // so an instruct model answers instead of ending at once on a bare prompt.
    bool chat = false;
    backends::backend_settings settings;  // model is filled per model
    double sample_interval_ms = 50.0;
    size_t output_sample_chars = 400;
    // Resource monitor: the tree it reads ("/" = this machine; tests pass fixture trees), the GPU
    // readings (null: the real NVML when monitor_root is "/", else none), whether to read RAPL
    // CPU package power, and its clock (null = steady clock; tests step it by hand).
    std::filesystem::path monitor_root = "/";
    std::shared_ptr<const device::nvml_interface> nvml;
    bool cpu_package_power = true;
    std::function<double()> monitor_clock_ms;
    // Measure main-memory bandwidth first (about 0.1 s) for the decode-speed sanity bound.
    bool measure_bandwidth = true;
};

struct progress_event {
    std::string backend;
    std::string model;
    std::string what;  // "loading", "warm-up", "run", "unavailable", "failed"
    std::string prompt_id;
    int run_index = 0;
    size_t n_done = 0;   // measured runs finished
    size_t n_total = 0;  // measured runs planned
    std::string message;  // for "unavailable" / "failed": why
};
using progress_callback = std::function<void(const progress_event&)>;

// Runs the plan. A backend that is unavailable or fails to load gets one sample whose `error`
// says why (with the hint), and the others go on; a failed run is recorded with its error.
// `create` makes a backend by name (default: the registry); tests pass fakes.
bench_report run_prompt_benchmark(
    const run_plan& plan, const progress_callback& progress = {},
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create = {});

// Main-memory read bandwidth in bytes/s: the best of a few passes of one thread summing a
// buffer larger than the caches. A lower bound of what the machine can stream (bench/sanity.h
// multiplies it by a generous factor), not a peak figure.
double measure_memory_bandwidth_bytes_per_s(size_t buffer_bytes = size_t(64) << 20);

// This machine as far as /proc, /etc/os-release and uname tell, and this binary.
system_info detect_system();
build_info this_build();

}  // namespace edgellm::bench
