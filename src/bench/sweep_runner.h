// Batch-size and concurrency sweeps of `edgellm bench`: latency per request and aggregate
// throughput as the number of sequences decoded together (native, one forward pass per step)
// or of parallel requests to one server (HTTP backends) grows.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "bench/result.h"
#include "bench/runner.h"

namespace edgellm::bench {

struct sweep_plan {
    std::vector<std::string> backends = {"native"};
    std::vector<std::string> models;
    bool pair_models = false;                         // as in run_plan
    std::map<std::string, std::string> served_model;  // as in run_plan
    std::string kind = "batch";                       // "batch" or "concurrency"
    std::vector<int> sizes;                          // batch sizes or concurrency levels, each >= 1
    prompt_case prompt = builtin_prompts().front();  // every request uses it
    int n_predict = 64;  // tokens per request (native batches ignore EOS so all reach it)
    int n_runs = 3;      // measured rounds per point (after one warm-up round)
    double temperature = 0.0;
    uint64_t seed = 42;
    backends::backend_settings settings;
};

// Runs every (backend, model, size). Native supports "batch" (edgellm::engine::generate_batch);
// HTTP server backends (openai and its presets, ollama, llama_cpp with --url) support
// "concurrency" (that many threads, one backend client each, against the same server). Any
// other pairing gives sweep points whose `error` says so. A point holds the latency of every
// request of its rounds, the sum of the rounds' wall times and of their generated tokens, so
// aggregate_tokens_per_s is tokens over time spent. settings.mode is "sweep".
bench_report run_sweep_benchmark(
    const sweep_plan& plan, const progress_callback& progress = {},
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create = {});

}  // namespace edgellm::bench
