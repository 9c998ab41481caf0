// Memory planner: byte estimates per (GPU layers, context) choice and the search for the best
// choice that fits (see memory_plan.h).
#include "device/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/units.h"
#include "device/device.h"
#include "model/kv_cache.h"

namespace edgellm::device {

uint64_t model_memory_facts::total_weight_bytes() const {
    uint64_t layers =
        std::accumulate(layer_weight_bytes.begin(), layer_weight_bytes.end(), uint64_t{0});
    return layers + embedding_bytes + output_bytes + other_bytes;
}

uint64_t model_memory_facts::kv_bytes_per_token_per_layer() const {
    const double elems =
        static_cast<double>(n_head_kv) * static_cast<double>(head_dim_k + (values_in_keys ? 0 : head_dim_v));
    return static_cast<uint64_t>(std::ceil(elems * kv_bytes_per_element));
}

uint64_t model_memory_facts::kv_bytes(int n_layers, int64_t n_ctx) const {
    return kv_bytes_per_token_per_layer() * static_cast<uint64_t>(std::max(n_layers, 0)) *
           static_cast<uint64_t>(std::max<int64_t>(n_ctx, 0));
}

uint64_t model_memory_facts::host_kv_bytes(int n_layers, int64_t n_ctx) const {
    n_ctx = std::max<int64_t>(n_ctx, 0);
    uint64_t positions = 0;
    for (int il = 0; il < std::max(n_layers, 0); ++il) {
        const int64_t w = il < static_cast<int>(layer_window.size()) ? layer_window[static_cast<size_t>(il)] : 0;
        // The same count as the engine's cache (kv_cache::swa_seq_blocks), never above n_ctx.
        positions += static_cast<uint64_t>(
            w > 0 && n_ctx > 0 ? std::min(n_ctx, model::kv_cache::swa_seq_blocks(w, n_ctx) * model::k_kv_block_size)
                               : n_ctx);
    }
    return kv_bytes_per_token_per_layer() * positions;
}

uint64_t scratch_bytes(const model_memory_facts& m, int64_t n_ctx, int64_t n_batch) {
    // An estimate of ggml's compute buffer for one ubatch without flash attention: a few
    // residual-stream-sized activations, the two FFN intermediates (gate and up), the
    // attention score matrix of every head, and one row of logits; all F32.
    const int64_t n_ff = m.n_ff > 0 ? m.n_ff : 4 * m.n_embd;
    const int64_t batch = std::max<int64_t>(std::min(n_batch, n_ctx), 1);
    const int64_t floats = batch * (4 * m.n_embd + 2 * n_ff) + m.n_head * batch * n_ctx + m.n_vocab;
    return static_cast<uint64_t>(std::max<int64_t>(floats, 0)) * 4;
}

memory_usage estimate_usage(const model_memory_facts& m, int n_gpu_layers, int64_t n_ctx,
                            int64_t n_batch) {
    memory_usage u;
    u.n_gpu_layers = std::clamp(n_gpu_layers, 0, m.n_layer);
    u.n_ctx = n_ctx;
    const int first_gpu_layer = m.n_layer - u.n_gpu_layers;  // llama.cpp offloads the last layers
    for (int il = 0; il < m.n_layer; ++il) {
        uint64_t b = il < static_cast<int>(m.layer_weight_bytes.size())
                         ? m.layer_weight_bytes[static_cast<size_t>(il)]
                         : 0;
        (il >= first_gpu_layer ? u.gpu_weight_bytes : u.host_weight_bytes) += b;
    }
    u.host_weight_bytes += m.embedding_bytes + m.other_bytes;
    const bool all_on_gpu = m.n_layer > 0 && u.n_gpu_layers == m.n_layer;
    (all_on_gpu ? u.gpu_weight_bytes : u.host_weight_bytes) += m.output_bytes;
    u.gpu_kv_bytes = m.kv_bytes(u.n_gpu_layers, n_ctx);
    u.host_kv_bytes = m.host_kv_bytes(m.n_layer - u.n_gpu_layers, n_ctx);
    const uint64_t scratch = scratch_bytes(m, n_ctx, n_batch);
    if (u.n_gpu_layers > 0) u.gpu_scratch_bytes = scratch;
    // With every layer on the GPU the host only gathers embedding rows and receives logits.
    u.host_scratch_bytes =
        all_on_gpu ? static_cast<uint64_t>(4 * (std::min(n_batch, n_ctx) * m.n_embd + m.n_vocab))
                   : scratch;
    return u;
}

plan_budget budget_from_device(const device_info& dev, std::optional<uint64_t> memory_cap_bytes) {
    plan_budget b;
    b.unified_memory = dev.unified_memory;
    b.has_gpu = !dev.gpus.empty();
    uint64_t host = dev.usable_ram_bytes();
    if (dev.jetson) {
        // CPU and GPU share RAM; leave the OS its reserve out of the total, whatever is free now.
        b.system_reserve_bytes = dev.jetson->system_reserve_bytes;
        uint64_t total = dev.memory.total_bytes;
        uint64_t ceiling = total > b.system_reserve_bytes ? total - b.system_reserve_bytes : 0;
        host = std::min(host, ceiling);
    }
    b.host_free_bytes = host;
    if (b.has_gpu && !b.unified_memory) b.gpu_free_bytes = dev.gpus.front().memory_free_bytes;
    if (memory_cap_bytes) {
        b.host_free_bytes = std::min(b.host_free_bytes, *memory_cap_bytes);
        b.gpu_free_bytes = std::min(b.gpu_free_bytes, *memory_cap_bytes);
    }
    // Estimates are estimates: keep 256 MiB (or 5% of the pool, if larger) beyond them.
    const uint64_t pool = b.unified_memory || !b.has_gpu
                              ? b.host_free_bytes
                              : std::min(b.host_free_bytes, b.gpu_free_bytes);
    b.margin_bytes = std::max<uint64_t>(256ull << 20, pool / 20);
    if (memory_cap_bytes) b.margin_bytes = std::min(b.margin_bytes, *memory_cap_bytes / 20);
    return b;
}

namespace {

bool fits(const memory_usage& u, const plan_budget& b) {
    auto room = [&](uint64_t pool) { return pool > b.margin_bytes ? pool - b.margin_bytes : 0; };
    if (b.unified_memory) return u.gpu_total() + u.host_total() <= room(b.host_free_bytes);
    if (u.gpu_total() > 0 && u.gpu_total() > room(b.gpu_free_bytes)) return false;
    return u.host_total() <= room(b.host_free_bytes);
}

std::string gib(uint64_t bytes) {
    return format_bytes(bytes);
}

std::string explain(const memory_plan& p, const plan_budget& b) {
    const auto& u = p.usage;
    std::string s;
    if (!b.has_gpu) {
        s = fmt::format("CPU only (no GPU): {} weights + {} KV + {} scratch at ctx {}, {} RAM left",
                        gib(u.host_weight_bytes), gib(u.host_kv_bytes), gib(u.host_scratch_bytes),
                        u.n_ctx, gib(p.host_left_bytes));
    } else if (b.unified_memory) {
        s = fmt::format(
            "{}/{} layers on GPU (unified memory), {} weights + {} KV + {} scratch at ctx {}, {} "
            "left",
            u.n_gpu_layers, p.n_layer, gib(u.gpu_weight_bytes + u.host_weight_bytes),
            gib(u.gpu_kv_bytes + u.host_kv_bytes), gib(u.gpu_scratch_bytes + u.host_scratch_bytes),
            u.n_ctx, gib(p.host_left_bytes));
        if (b.system_reserve_bytes > 0)
            s += fmt::format(" beyond the {} system reserve", gib(b.system_reserve_bytes));
    } else {
        s = fmt::format(
            "{}/{} layers on GPU, {} weights + {} KV + {} scratch at ctx {}, {} GPU memory left; "
            "host RAM {} ({} weights + {} KV), {} left",
            u.n_gpu_layers, p.n_layer, gib(u.gpu_weight_bytes), gib(u.gpu_kv_bytes),
            gib(u.gpu_scratch_bytes), u.n_ctx, gib(p.gpu_left_bytes), gib(u.host_total()),
            gib(u.host_weight_bytes), gib(u.host_kv_bytes), gib(p.host_left_bytes));
    }
    if (p.ctx_reduced) s += fmt::format(" (context reduced from {} to fit)", p.requested_ctx);
    return s;
}

}  // namespace

memory_plan plan_memory(const model_memory_facts& m, const plan_budget& b,
                        const plan_request& req) {
    if (m.n_layer <= 0) throw usage_error("memory plan: the model has no layers");
    int64_t ctx = req.n_ctx > 0
                      ? req.n_ctx
                      : model::default_ctx(m.n_ctx_train);
    const int64_t min_ctx = std::min(std::max<int64_t>(req.min_ctx, 1), ctx);
    int max_ngl = b.has_gpu ? m.n_layer : 0;
    if (req.n_gpu_layers_max >= 0) max_ngl = std::min(max_ngl, req.n_gpu_layers_max);

    std::vector<int64_t> contexts;
    for (int64_t c = ctx; c > min_ctx; c /= 2) contexts.push_back(c);
    contexts.push_back(min_ctx);

    for (int64_t c : contexts) {
        for (int ngl = max_ngl; ngl >= 0; --ngl) {
            memory_usage u = estimate_usage(m, ngl, c, req.n_batch);
            if (!fits(u, b)) continue;
            memory_plan p;
            p.usage = u;
            p.n_layer = m.n_layer;
            p.requested_ctx = ctx;
            p.ctx_reduced = c < ctx;
            p.unified_memory = b.unified_memory;
            auto left = [&](uint64_t pool, uint64_t used) {
                uint64_t need = used + b.margin_bytes;
                return pool > need ? pool - need : 0;
            };
            if (b.unified_memory) {
                p.host_left_bytes = left(b.host_free_bytes, u.gpu_total() + u.host_total());
            } else {
                p.gpu_left_bytes = b.has_gpu ? left(b.gpu_free_bytes, u.gpu_total()) : 0;
                p.host_left_bytes = left(b.host_free_bytes, u.host_total());
            }
            p.explanation = explain(p, b);
            return p;
        }
    }
    memory_usage cpu = estimate_usage(m, 0, min_ctx, req.n_batch);
    const uint64_t need = cpu.host_total();
    std::string msg = fmt::format(
        "model '{}' does not fit: even on the CPU at ctx {} it needs {} ({} weights + {} KV + {} "
        "scratch) "
        "plus a {} margin, but only {} of RAM is available",
        m.name, min_ctx, gib(need), gib(cpu.host_weight_bytes), gib(cpu.host_kv_bytes),
        gib(cpu.host_scratch_bytes), gib(b.margin_bytes), gib(b.host_free_bytes));
    if (b.has_gpu && !b.unified_memory)
        msg += fmt::format(" and {} on the GPU", gib(b.gpu_free_bytes));
    if (b.system_reserve_bytes)
        msg += fmt::format(" (after the {} system reserve)", gib(b.system_reserve_bytes));
    throw usage_error(msg);
}

}  // namespace edgellm::device
