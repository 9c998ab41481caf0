// Embeddings throughput (`edgellm bench --embed`): N inputs of mixed lengths embedded by each
// backend (native: edgellm's embedder; llama_cpp_python: Llama.embed), model loading excluded,
// reported as inputs/s and tokens/s (best and median of the runs after a warm-up call).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "bench/runner.h"

namespace edgellm::bench {

struct embed_plan {
    std::vector<std::string> backends;
    std::vector<std::string> models;
    bool pair_models = false;
    std::vector<std::string> inputs;  // the texts every backend embeds
    int n_runs = 3;
    int n_warmup = 1;
    backends::backend_settings settings;
};

struct embed_sample {
    std::string backend;
    std::string model;
    int64_t n_inputs = 0;
    int64_t n_tokens = 0;
    int64_t n_embd = 0;
    std::vector<double> ms;  // one per measured run
    double load_ms = 0;
    std::string error;  // unavailable, failed to load, or a run failed
};

// n sentences of 6 to 96 words (+ a full stop) drawn with `seed` from a fixed word list: about 8
// to 120 tokens each with a BERT or BPE vocabulary.
std::vector<std::string> embed_inputs(int n, uint64_t seed = 1);

// Runs every (backend, model); one sample each (with `error` when it could not run: unavailable,
// failed to load, no embeddings). `create` makes a backend by name (default: the registry); tests
// pass fakes.
std::vector<embed_sample> run_embed_benchmark(
    const embed_plan& plan, const progress_callback& progress,
    const std::function<std::unique_ptr<backends::backend>(const std::string&)>& create = {});

// Console table (Markdown when `markdown`): backend, model, inputs, tokens, best / median ms,
// inputs/s and tokens/s of the best run.
std::string render_embed(const std::vector<embed_sample>& samples, const embed_plan& plan,
                         bool markdown = false);
// {"mode": "embed", "threads", "runs", "results": [{backend, model, n_inputs, n_tokens, n_embd,
// load_ms, runs_ms, best_ms, median_ms, inputs_per_s, tokens_per_s, error}]}.
std::string embed_json(const std::vector<embed_sample>& samples, const embed_plan& plan);

}  // namespace edgellm::bench
