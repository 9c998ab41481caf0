// The load plan (see load_plan.h): context, KV type, GPU layers and the fallback rung, from plain numbers.
#include "engine/load_plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"
#include "core/units.h"
#include "device/cpu_info.h"
#include "model/kv_cache.h"

namespace edgellm::engine {
namespace {

std::string gpu_unavailable_error(int n_gpu_layers, const std::string& why) {
    return fmt::format("-ngl {}: {}", n_gpu_layers, why);
}

// The refusal text when weights + the KV cache of (n_ctx, kv_type) exceed the budget, else "".
std::string memory_refusal(const load_plan& plan, int64_t n_ctx) {
    if (plan.budget_bytes == 0 || plan.weights_bytes + plan.kv_bytes <= plan.budget_bytes) return {};
    if (plan.weights_bytes == 0)
        return fmt::format("not enough memory: a KV cache of {} tokens needs {}, but only {} is available "
                           "besides the loaded model; use a smaller context (-c)",
                           n_ctx, format_bytes(plan.kv_bytes), format_bytes(plan.budget_bytes));
    return fmt::format(
        "not enough memory: the model needs {} for its weights plus {} for a KV cache of {} tokens, but only {} "
        "is available; use a smaller model or quantization, or a smaller context (-c)",
        format_bytes(plan.weights_bytes), format_bytes(plan.kv_bytes), n_ctx, format_bytes(plan.budget_bytes));
}

}  // namespace

void check_engine_params(const engine_params& p, bool check_gpu) {
    if (p.n_ctx < 0) throw usage_error(fmt::format("context size must be positive, got {}", p.n_ctx));
    if (p.n_batch <= 0) throw usage_error(fmt::format("batch size must be positive, got {}", p.n_batch));
    if (p.n_threads < 0) throw usage_error(fmt::format("thread count must be positive, got {}", p.n_threads));
    if (p.n_threads_batch < 0)
        throw usage_error(fmt::format("prefill thread count must be positive, got {}", p.n_threads_batch));
    if (p.n_seq <= 0) throw usage_error(fmt::format("sequence count must be positive, got {}", p.n_seq));
    if (p.n_kv_cells < 0) throw usage_error(fmt::format("KV cache size must be positive, got {}", p.n_kv_cells));
    if (p.n_gpu_layers > 0 && p.deterministic)  // the batch-invariant kernels are the CPU ones
        throw usage_error(fmt::format("--deterministic runs on the CPU kernels only: drop -ngl {} or --deterministic",
                                      p.n_gpu_layers));
    if (check_gpu && p.n_gpu_layers > 0)  // refused before the model is read when no GPU can be used at all
        if (const std::string why = model::gpu_offload_unavailable_reason(); !why.empty())
            throw usage_error(gpu_unavailable_error(p.n_gpu_layers, why));
}

load_plan_model load_plan_model_of(const model::model& m) {
    load_plan_model r;
    r.hp = m.hparams();
    r.weights_bytes = m.file().file_size();
    r.gpu = model::gpu_weight_bytes_of(m);
    return r;
}

load_plan_memory available_memory(const engine_params& p, bool weights_resident) {
    load_plan_memory mem;
    mem.weights_resident = weights_resident;
    if (p.memory_budget_bytes == 0)
        mem.ram_available_bytes =
            device::usable_memory_bytes(device::read_memory_info("/"), device::read_cgroup_limits("/"));
    if (p.n_gpu_layers > 0) {
        mem.gpu_unavailable_reason = model::gpu_offload_unavailable_reason();
        if (mem.gpu_unavailable_reason.empty() && p.fallback) mem.gpu_free_bytes = model::gpu_free_memory();
    }
    return mem;
}

load_plan plan_load(const engine_params& p, const load_plan_model& m, const load_plan_memory& mem) {
    const model::model_hparams& hp = m.hp;
    load_plan plan;
    plan.asked_kv_type = plan.kv_type = p.kv_type;
    plan.asked_gpu_layers = plan.n_gpu_layers = p.n_gpu_layers;
    plan.rung = "as asked";

    // 1. The context: the requested one, or the model's trained context capped. Sliding-window
    // layers mask keys older than the window (forward_pass::attend), so the context is limited by
    // the trained context only.
    plan.asked_ctx = plan.n_ctx = p.n_ctx == 0 ? model::default_ctx(hp.n_ctx_train) : p.n_ctx;
    plan.n_batch = std::min(p.n_batch, plan.n_ctx * p.n_seq);
    if (plan.n_ctx > hp.n_ctx_train) {
        plan.error = fmt::format("context size {} exceeds the model's maximum of {} tokens", plan.n_ctx, hp.n_ctx_train);
        return plan;
    }
    if (p.n_gpu_layers > 0 && !mem.gpu_unavailable_reason.empty()) {
        plan.error = gpu_unavailable_error(p.n_gpu_layers, mem.gpu_unavailable_reason);
        return plan;
    }

    // 2. Host memory: the explicit budget (which always counts the weights), else what this
    // machine and cgroup have available now (without the weights when they are already loaded).
    plan.explicit_budget = p.memory_budget_bytes != 0;
    plan.budget_bytes = plan.explicit_budget ? p.memory_budget_bytes : mem.ram_available_bytes;
    plan.weights_bytes = mem.weights_resident && !plan.explicit_budget ? 0 : m.weights_bytes;
    auto fits = [&](ggml_type kv, int64_t ctx) {
        plan.kv_type = kv;
        plan.n_ctx = ctx;
        plan.kv_bytes = model::kv_cache::bytes_for(hp, ctx, kv, p.n_seq, p.n_kv_cells, p.swa_full);
        return memory_refusal(plan, ctx);
    };
    if (!p.fallback) {
        plan.error = fits(p.kv_type, plan.asked_ctx);
        if (!plan.error.empty()) return plan;
    } else {
        std::vector<ggml_type> kv_types = {p.kv_type};
        for (ggml_type t : {ggml_type::q8_0, ggml_type::q4_0})
            if (model::kv_cache::bytes_for(hp, 1, t, 1, 0) < model::kv_cache::bytes_for(hp, 1, p.kv_type, 1, 0) &&
                hp.head_dim % type_traits(t).block_size == 0)
                kv_types.push_back(t);
        std::string first_error;
        bool found = false;
        for (ggml_type kv : kv_types) {
            for (int64_t ctx = plan.asked_ctx;; ctx = std::max(k_fallback_min_ctx, ctx / 2)) {
                const std::string why = fits(kv, ctx);
                if (why.empty()) {
                    found = true;
                    break;
                }
                if (first_error.empty()) first_error = why;
                plan.tried.push_back(fmt::format("{} x {}", type_name(kv), ctx));
                if (ctx <= k_fallback_min_ctx || ctx <= 1) break;
            }
            if (found) break;
        }
        if (!found) {
            plan.error = fmt::format("{} (fallback tried, every rung too big: {})", first_error, fmt::join(plan.tried, ", "));
            return plan;
        }
        const bool smaller_kv = plan.kv_type != p.kv_type, smaller_ctx = plan.n_ctx != plan.asked_ctx;
        if (smaller_kv || smaller_ctx) {
            plan.rung = smaller_kv ? (smaller_ctx ? "smaller KV type and context" : "smaller KV type") : "smaller context";
            plan.note = fmt::format("fallback: {} KV cache, context {} (asked: {}, {}; {} did not fit)",
                                    type_name(plan.kv_type), plan.n_ctx, type_name(p.kv_type), plan.asked_ctx,
                                    fmt::join(plan.tried, ", "));
        }
    }
    plan.n_batch = std::min(p.n_batch, plan.n_ctx * p.n_seq);

    // 3. GPU memory: the "fewer GPU layers" rung. What the device cannot hold runs on the CPU,
    // whose copy of every layer is loaded anyway; a model the GPU path does not run is still
    // refused when the layers are created.
    if (p.n_gpu_layers > 0) {
        auto need = [&](int n) {
            return model::gpu_layers_device_bytes(hp, m.gpu, n, plan.n_ctx, plan.kv_type, plan.n_batch);
        };
        if (p.fallback) {
            const model::gpu_layer_choice c =
                model::choose_gpu_layers(p.n_gpu_layers, static_cast<int>(hp.n_layer), mem.gpu_free_bytes, need);
            if (!c.note.empty()) {
                plan.n_gpu_layers = c.n_gpu_layers;
                plan.gpu_tried = c.tried;
                plan.note += (plan.note.empty() ? "" : "; ") + c.note;
                plan.rung = plan.rung == "as asked" ? "fewer GPU layers" : plan.rung + "; fewer GPU layers";
            }
        }
        plan.gpu_bytes = plan.n_gpu_layers > 0 ? need(plan.n_gpu_layers) : 0;
    }
    return plan;
}

void apply_load_plan(const load_plan& plan, engine_params& p) {
    if (!plan.ok()) throw usage_error(plan.error);
    p.n_ctx = plan.n_ctx;
    p.kv_type = plan.kv_type;
    p.n_gpu_layers = plan.n_gpu_layers;
    p.n_batch = plan.n_batch;
    if (!plan.note.empty()) p.fallback_note += (p.fallback_note.empty() ? "" : "; ") + plan.note;
}

}  // namespace edgellm::engine
