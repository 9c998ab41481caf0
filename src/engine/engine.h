// The generation engine: loads a model, owns its KV cache and run state, and runs
// prompt -> prefill -> decode with a token callback (streaming) and measured statistics.
// Used by `edgellm run`, the native backend and the server; knows nothing about the CLI.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "sampling/sampler.h"

namespace edgellm::engine {

struct engine_params {
    std::string model_path;
    int64_t n_ctx = 0;        // 0: the model's trained context, capped at k_default_max_ctx
    int64_t n_batch = 512;    // tokens per prefill step (one matrix-matrix pass)
    int n_threads = 0;        // 0: every hardware thread
    ggml_type kv_type = ggml_type::f16;
    int n_seq = 1;            // sequences the KV cache holds
    bool repack = true;       // convert weights to the CPU kernels' packed layout at load
    // Memory the weights plus the KV cache may take; 0: what this machine (and cgroup) has
    // available now. Loading more is refused with a clear error instead of paging or an OOM kill.
    uint64_t memory_budget_bytes = 0;
};
constexpr int64_t k_default_max_ctx = 4096;

struct generation_params {
    int n_predict = 128;      // tokens to generate at most (> 0)
    sampling::sampling_params sampling;
    bool ignore_eos = false;  // keep going past EOS/EOT (benchmarks)
    std::vector<int32_t> extra_eog_ids;  // more end-of-generation tokens (e.g. the tokenizer's <|im_end|>)
};

// What one generate() call measured. Rates are 0 when nothing was timed.
struct generation_stats {
    double load_ms = 0;               // model open + validation + KV/scratch allocation
    int64_t n_prompt = 0;             // prompt tokens evaluated
    double prefill_ms = 0;            // forward passes over the prompt
    double prefill_tokens_per_s = 0;
    int64_t n_gen = 0;                // tokens generated (an EOS/EOT that ended the run is not counted)
    int64_t n_decode = 0;             // single-token forward passes after the prompt
    double decode_ms = 0;             // time in those forward passes
    double decode_tokens_per_s = 0;   // n_decode / decode_ms
    double sample_ms = 0;             // time spent in the sampler chain
    double ttft_ms = 0;               // generate() start -> first token picked
    uint64_t kv_bytes = 0;            // KV cache allocation
    uint64_t model_bytes = 0;         // GGUF file size
    uint64_t peak_rss_bytes = 0;      // VmHWM of this process after the run
    std::string stop_reason;          // "eos" | "length" | "context" | "cancelled"
};

// Called with every generated token id; return false to stop.
using token_callback = std::function<bool(int32_t token)>;

class engine {
public:
    // Loads the model and allocates the KV cache and scratch buffers once. Throws
    // edgellm::usage_error for bad parameters (context above the model's maximum, ...) and
    // edgellm::error for a bad model file.
    explicit engine(const engine_params& p);

    const model::model& get_model() const { return *model_; }
    const model::model_hparams& hparams() const { return model_->hparams(); }
    const model::kv_cache& kv() const { return *kv_; }
    const engine_params& params() const { return params_; }
    double load_ms() const { return load_ms_; }
    void set_n_threads(int n);

    // Generates on sequence 0 from an empty cache. `prompt` must not be empty and must leave
    // room in the context for at least one more token.
    generation_stats generate(std::span<const int32_t> prompt, const generation_params& gp,
                              const token_callback& on_token);

    // Evaluates `tokens` from an empty cache and returns every position's next-token logits,
    // [n_tokens][n_vocab] (oracle comparisons, perplexity).
    std::vector<float> all_logits(std::span<const int32_t> tokens);

    // Lower level, for callers that schedule their own batches (server, speculative decoding).
    model::kv_cache& kv_mut() { return *kv_; }
    model::forward_pass& forward() { return *forward_; }

private:
    void check_prompt(std::span<const int32_t> prompt) const;
    // Refuses (usage_error) weights + KV cache larger than the memory budget.
    void check_memory() const;

    engine_params params_;
    std::unique_ptr<model::model> model_;
    std::unique_ptr<model::kv_cache> kv_;
    std::unique_ptr<model::forward_pass> forward_;
    double load_ms_ = 0;
};

// Resident-set high-water mark (VmHWM) and current RSS of this process; 0 when unknown.
uint64_t peak_rss_bytes();
uint64_t current_rss_bytes();

}  // namespace edgellm::engine
