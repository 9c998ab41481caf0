// The generation engine: a model loaded once (shared) and sessions on it that own a KV cache
// and run state, generating through the continuous-batching scheduler with a token callback
// (streaming) and measured statistics. Used by `edgellm run`/`chat`, the native backend, the
// bench runners and the server; knows nothing about the CLI.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "engine/scheduler.h"
#include "sampling/grammar_matcher.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace edgellm::engine {

// A model loaded once and shared, read-only, by every session that runs it (the CLI, the native
// backend, bench runners and every server request): weights (repacked once), tokenizer and the
// end-of-generation token set. Sessions (engine) hold their own KV cache and scratch buffers.
class loaded_model {
public:
    // Opens the GGUF, calls `before_repack` (a memory check that can refuse) and converts the
    // weights to the packed layout when `repack`, using n_threads (0: all).
    static std::shared_ptr<const loaded_model> load(const std::string& path, bool repack, int n_threads,
                                                    const std::function<void(const model::model&)>& before_repack = {});

    const model::model& get_model() const { return *model_; }
    const model::model_hparams& hparams() const { return model_->hparams(); }
    // The tokenizer from the GGUF metadata, or null (then tokenizer_error() says why).
    const tokenizer* get_tokenizer() const { return tok_.get(); }
    const std::string& tokenizer_error() const { return tokenizer_error_; }
    // Every token that ends generation: the file's EOS/EOT/EOM ids and the tokenizer's
    // end-of-turn tokens (<|im_end|>, <|eot_id|>, ...). The one owner of that rule.
    const std::vector<int32_t>& eog_ids() const { return eog_ids_; }
    bool is_eog(int32_t token) const;
    double load_ms() const { return load_ms_; }
    // The vocabulary as constrained decoding sees it (each token's bytes, a prefix tree over
    // them, the end-of-generation tokens): built once, on first use. usage_error without a tokenizer.
    std::shared_ptr<const sampling::token_vocab> grammar_vocab() const;

private:
    loaded_model() = default;
    std::unique_ptr<model::model> model_;
    std::unique_ptr<tokenizer> tok_;
    std::string tokenizer_error_;
    std::vector<int32_t> eog_ids_;
    double load_ms_ = 0;
    mutable std::once_flag vocab_once_;
    mutable std::shared_ptr<const sampling::token_vocab> vocab_;
};

struct engine_params {
    std::string model_path;
    int64_t n_ctx = 0;        // positions per sequence; 0: the model's trained context, capped at k_default_max_ctx
    int64_t n_batch = 512;    // tokens per forward pass (prefill chunk)
    int n_threads = 0;        // 0: every hardware thread
    int n_threads_batch = 0;  // threads for prefill steps (more than one token); 0: n_threads
    model::flash_attn_mode flash_attn = model::flash_attn_mode::automatic;  // --flash-attn
    ggml_type kv_type = ggml_type::f16;
    int n_seq = 1;            // sequences the KV cache holds at once
    int64_t n_kv_cells = 0;   // KV pool size in positions shared by the sequences; 0: n_seq * n_ctx
    // --swa-full: sliding-window layers (Gemma 2/3, Mistral) keep every position as the other
    // layers do, instead of a window-sized pool (model::kv_cache; the default).
    bool swa_full = false;
    bool repack = true;       // convert weights to the CPU kernels' packed layout at load
    // Layers whose weights and KV go to a CUDA GPU (-ngl; the last ones, and the output layer
    // when more than the layer count, as llama.cpp): model::gpu_layers. Refused with the reason
    // (no CUDA build or device, an unsupported model, n_seq > 1, device memory), never ignored.
    int n_gpu_layers = 0;
    // Memory the weights plus the KV cache may take; 0: what this machine (and cgroup) has
    // available now. Loading more is refused with a clear error instead of paging or an OOM kill.
    uint64_t memory_budget_bytes = 0;
    // When the request does not fit: walk the fallback chain instead of refusing at once (the
    // rungs are engine::plan_load's, src/engine/load_plan.h: the context halved down to
    // k_fallback_min_ctx, then the same with a Q8_0 and a Q4_0 KV cache, then fewer GPU layers).
    // The rungs taken are in `fallback_note` (empty when the request fitted as asked).
    bool fallback = false;
    std::string fallback_note;
    // Automatic prefix caching in the paged KV cache (model::kv_cache): requests reuse the KV
    // blocks of a prompt prefix an earlier request left (--no-prefix-cache turns it off). Off
    // whatever this says when layers run on a GPU, whose KV cache is not paged.
    bool prefix_cache = true;
    // Speculative decoding inside the scheduler (--spec-ngram): drafts for every session's
    // scheduler and generate().
    speculation_params spec;
    // --deterministic: batch-invariant forward passes (model::forward_pass::set_deterministic),
    // so a sequence's greedy output does not depend on what else runs in its batch. Slower
    // prefill; CPU only (refused with GPU layers).
    bool deterministic = false;
};
constexpr int64_t k_fallback_min_ctx = 256;
using model::k_default_max_ctx;


// What one generate() call measured: the scheduler's record of the sequence (sequence_result:
// tokens, times, drafts, how it ended) plus the session's facts, with the rates derived from that
// record rather than copied out of it. Rates are 0 when nothing was timed.
struct generation_stats : sequence_result {
    double load_ms = 0;               // model open + validation + KV/scratch allocation
    uint64_t kv_bytes = 0;            // KV cache allocation
    uint64_t model_bytes = 0;         // GGUF file size
    uint64_t peak_rss_bytes = 0;      // VmHWM of this process after the run

    // Tokens generated (an EOS/EOT that ended the run is not counted).
    int64_t n_gen() const { return static_cast<int64_t>(tokens.size()); }
    // generate() start -> first token picked.
    double ttft_ms() const { return first_token_ms; }
    // Evaluated prompt tokens (not the cached ones) / prefill_ms.
    double prefill_tokens_per_s() const;
    // Generated tokens per second of decode passes (with drafts a pass yields several tokens).
    double decode_tokens_per_s() const;
    // Decode passes that verified drafts (speculative decoding), 0 without drafts.
    int64_t n_rounds() const { return n_drafted > 0 ? n_decode : 0; }
};

// Called with every generated token id; return false to stop.
using token_callback = std::function<bool(int32_t token)>;

// Loads p.model_path for sessions with parameters p: opens the file, plans (engine::plan_load:
// context, KV type, GPU layers, fallback rung; usage_error when nothing fits) before the slow and
// memory-hungry repacking, then repacks. p is completed in place: `adjust` may set fields from the
// model's hyperparameters first (the server sizes its KV pool from the trained context), then the
// plan's choice and note are applied (apply_load_plan).
std::shared_ptr<const loaded_model> load_model_for(
    engine_params& p, const std::function<void(engine_params&, const model::model_hparams&)>& adjust = {});

// A session on a loaded model: KV cache, scratch buffers and threads.
class engine {
public:
    // Loads the model and allocates the KV cache and scratch buffers once. Throws
    // edgellm::usage_error for bad parameters (context above the model's maximum, ...) and
    // edgellm::error for a bad model file.
    explicit engine(const engine_params& p);
    // A session on a model that is already loaded (p.model_path and p.repack are ignored),
    // planned by engine::plan_load with the weights resident: without an explicit budget only its
    // KV cache is checked against the memory still available.
    engine(std::shared_ptr<const loaded_model> m, const engine_params& p);

    const std::shared_ptr<const loaded_model>& shared_model() const { return lm_; }
    const model::model& get_model() const { return lm_->get_model(); }
    const model::model_hparams& hparams() const { return lm_->hparams(); }
    const model::kv_cache& kv() const { return *kv_; }
    const engine_params& params() const { return params_; }
    double load_ms() const { return load_ms_; }
    void set_n_threads(int n);
    // Speculative decoding for generate() and make_scheduler() from now on (use_draft_model
    // for a draft model; {} turns it off).
    void set_speculation(speculation_params s) { params_.spec = std::move(s); }

    // Generates on KV slot 0. `prompt` must not be empty and must leave room in the context
    // for at least one more token. With keep_kv, the KV an earlier call left is reused for the
    // prompt tokens it shares (chat turns re-send their history): only the new part is
    // prefilled. That is the prefix cache's work when it is on; without it (GPU layers,
    // --no-prefix-cache) slot 0 keeps the previous keep_kv call's KV. Without keep_kv the whole
    // prompt is evaluated (benchmarks measure it).
    generation_stats generate(std::span<const int32_t> prompt, const generation_params& gp,
                              const token_callback& on_token, bool keep_kv = false);

    // Evaluates `tokens` from an empty cache and returns every position's next-token logits,
    // [n_tokens][n_vocab] (oracle comparisons, perplexity).
    std::vector<float> all_logits(std::span<const int32_t> tokens);

    // The continuous-batching loop over this session's KV slots (server, batched bench runs).
    // `spec` (when enabled: a draft model's draft_source) replaces the session's own
    // engine_params.spec (--spec-ngram).
    std::unique_ptr<scheduler> make_scheduler(size_t max_queue = 64, speculation_params spec = {});

    // Lower level, for callers that build their own batches (tests, speculative decoding).
    model::kv_cache& kv_mut() { return *kv_; }
    model::forward_pass& forward() { return *forward_; }
    // What runs on the GPU ("gpu: 22 of 22 layers and the output layer on ..."), "" when nothing.
    std::string gpu_description() const { return forward_->gpu() ? forward_->gpu()->describe() : std::string(); }
    // Throws usage_error for an empty prompt, one that fills the context or has ids outside the vocab.
    void check_prompt(std::span<const int32_t> prompt) const;

private:
    void open();  // threads, KV cache, scratch: the session's own state

    engine_params params_;
    std::shared_ptr<const loaded_model> lm_;
    std::unique_ptr<model::kv_cache> kv_;
    std::unique_ptr<model::forward_pass> forward_;
    std::unique_ptr<forward_runner> runner_;
    std::vector<int32_t> kv_tokens_;  // what slot 0's KV holds after a keep_kv generate()
    double load_ms_ = 0;
};

// Resident-set high-water mark (VmHWM) and current RSS of this process; 0 when unknown.
uint64_t peak_rss_bytes();
uint64_t current_rss_bytes();

}  // namespace edgellm::engine
