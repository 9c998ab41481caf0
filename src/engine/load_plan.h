// Loading in two phases: open the model (mmap + hyperparameters, no repacking) -> plan -> materialise
// (repack, allocate the KV cache and the GPU layers). The plan is a pure function of the session
// parameters, a few numbers about the model and the memory available; it picks the context, the
// KV cache type, the GPU layers and the fallback rung, or refuses with the error text. The loader
// (load_model_for, engine) and `edgellm device -m` both call it, so what `device` prints is what
// the loader does. The one owner of the fallback chain (engine_params::fallback).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/gpu_layers.h"
#include "model/hparams.h"

namespace edgellm::engine {

// What the plan needs about the model, as plain numbers (read once from an opened model by
// load_plan_model_of, or written by hand in tests).
struct load_plan_model {
    model::model_hparams hp;
    uint64_t weights_bytes = 0;      // the GGUF file's size: what the weights take in host memory
    model::gpu_weight_bytes gpu;     // GGUF-layout bytes the GPU layers would copy (-ngl)
};
load_plan_model load_plan_model_of(const model::model& m);

// The memory the plan fits into.
struct load_plan_memory {
    // RAM this process may take now (MemAvailable capped by the cgroup); 0: unknown, nothing is
    // checked. Not used when engine_params::memory_budget_bytes is set (that budget is the limit).
    uint64_t ram_available_bytes = 0;
    uint64_t gpu_free_bytes = 0;      // free memory of the GPU the -ngl layers go to
    // Why no layer can be offloaded here ("" when a GPU is there): -ngl N > 0 is refused with it.
    std::string gpu_unavailable_reason;
    // The weights are already loaded (a session on a shared model): without an explicit budget
    // only the KV cache is checked against what is still available.
    bool weights_resident = false;
};
// What the loader plans with on this machine: /proc/meminfo and the cgroup (unless p has an
// explicit budget), the CUDA device's free memory (when p asks for GPU layers with fallback).
load_plan_memory available_memory(const engine_params& p, bool weights_resident);

struct load_plan {
    // Non-empty: the load is refused with this text (a usage_error); the fields below then hold
    // the last rung looked at.
    std::string error;
    int64_t n_ctx = 0;
    ggml_type kv_type = ggml_type::f16;
    int n_gpu_layers = 0;
    int64_t n_batch = 0;              // min(n_batch, n_ctx * n_seq)
    // The request, after the default context was resolved.
    int64_t asked_ctx = 0;
    ggml_type asked_kv_type = ggml_type::f16;
    int asked_gpu_layers = 0;
    // The limit the weights + KV cache were checked against (0: unknown, nothing checked), and
    // whether it was the explicit one (--memory-limit), which always counts the weights.
    uint64_t budget_bytes = 0;
    bool explicit_budget = false;
    uint64_t weights_bytes = 0;       // counted against the budget (0 when resident and no explicit budget)
    uint64_t kv_bytes = 0;            // model::kv_cache::bytes_for at the chosen rung
    uint64_t gpu_bytes = 0;           // device bytes of the chosen GPU layers (0 without -ngl)
    // "as asked", "smaller context", "smaller KV type", "smaller KV type and context", and/or
    // "fewer GPU layers" (joined by "; ") when the GPU rung was taken.
    std::string rung;
    std::vector<std::string> tried;      // host rungs that did not fit, in order ("F16 x 1024")
    std::vector<std::string> gpu_tried;  // GPU rungs that did not fit ("23 layers: 4.2 GiB")
    // What the loader reports (engine_params::fallback_note): "" when the request fitted as asked.
    std::string note;
    bool ok() const { return error.empty(); }
};

// The plan for session parameters p (validated by check_engine_params) on model m with memory mem:
// 1. the context: p.n_ctx, or the model's trained context capped at k_default_max_ctx (refused
//    above the trained context);
// 2. host memory: weights + model::kv_cache::bytes_for(n_ctx, kv_type, n_seq, n_kv_cells) within
//    the budget. With p.fallback the rungs are: the context halved down to k_fallback_min_ctx,
//    then the same with a Q8_0 and a Q4_0 KV cache (when smaller than the asked type and the heads
//    are whole blocks); the first that fits is taken;
// 3. GPU memory (-ngl with p.fallback): model::choose_gpu_layers (3/4, 1/2, 1/4 of the layers,
//    then none) on model::gpu_layers_device_bytes. Without p.fallback the layers stay as asked and
//    the GPU refuses what it cannot hold when they are created.
load_plan plan_load(const engine_params& p, const load_plan_model& m, const load_plan_memory& mem);

// Sets p's n_ctx, kv_type, n_gpu_layers and n_batch to the plan's, and appends its note to
// p.fallback_note; throws usage_error with plan.error for a refusal.
void apply_load_plan(const load_plan& plan, engine_params& p);

// usage_error for parameters no plan can take (negative sizes, -ngl with --deterministic and,
// with check_gpu, -ngl where no GPU can be used at all on this machine); checked before the model
// is read. `edgellm device --root FIXTURE` leaves the GPU to the fixture's facts (check_gpu false).
void check_engine_params(const engine_params& p, bool check_gpu = true);

}  // namespace edgellm::engine
