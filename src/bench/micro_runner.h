// Micro mode of `edgellm bench` (llama-bench style): prefill (ppN), decode (tgN) and combined
// (ppN+tgM) tests over every combination of threads, batch, GPU layers and context depth,
// each repeated after one warm-up. The native engine is timed directly on synthetic token ids.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "bench/result.h"
#include "bench/runner.h"

namespace edgellm::bench {

// "128,512" -> {128, 512}. Every item must be an integer >= min_value; anything else (empty
// items, "abc", "1.5", "-3" when min_value is 1) throws usage_error naming `flag`.
std::vector<int> parse_int_list(const std::string& text, const std::string& flag, int min_value);
// "512,128" -> {512, 128} for -pg: exactly two positive integers.
std::pair<int, int> parse_pg_pair(const std::string& text);

struct micro_plan {
    std::vector<std::string> backends = {"native"};
    std::vector<std::string> models;
    bool pair_models = false;                         // as in run_plan
    std::map<std::string, std::string> served_model;  // as in run_plan, for server backends
    std::vector<int> n_prompt;                        // ppN tests
    std::vector<int> n_gen;                           // tgN tests
    std::vector<std::pair<int, int>> pg;              // ppN+tgM tests
    std::vector<int> n_threads = {0};  // 0: the backend's default (recorded as resolved)
    std::vector<int> n_batch = {512};
    std::vector<int> n_gpu_layers = {-1};  // -1: each backend's default (not passed on); native refuses > 0
    std::vector<int> n_depth = {0};
    int n_reps = 5;
    uint64_t seed = 42;                   // synthetic token ids
    backends::backend_settings settings;  // url, timeout, n_ctx ... (model etc. set per case)
    bool threads_given = false;           // the user asked for -t/-b/-ngl explicitly; server
    bool batch_given = false;             // backends cannot apply these and say so
    bool ngl_given = false;
};

// One test to run: a micro_result without measurements.
struct micro_case {
    std::string backend;
    std::string model;
    int n_prompt = 0;
    int n_gen = 0;
    int n_threads = 0;
    int n_batch = 0;
    int n_gpu_layers = 0;
    int n_depth = 0;
};

// Every combination in a fixed order: backend, model, batch, threads, GPU layers, depth (outer
// to inner), then the tests: every ppN, every tgN, every ppN+tgM. Throws usage_error when no
// test or no model is given.
std::vector<micro_case> expand_micro_cases(const micro_plan& plan);

// Runs the plan: report.micro holds one micro_result per case with plan.n_reps rates, or an
// error saying why the test could not run on that backend. settings.mode is "micro".
// `create` (tests) replaces the registry; every backend, "native" included, then goes through
// the backend interface and its reported timings instead of the engine.
bench_report run_micro_benchmark(
    const micro_plan& plan, const progress_callback& progress = {},
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create = {});

}  // namespace edgellm::bench
