// Registry of the x8 packed layouts and the ISA-neutral drivers around them: packing a whole
// matrix, and the multithreaded product that runs an ISA's gemm over the packed groups.
#include "kernels/cpu/packed.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/packed_f16.h"
#include "kernels/cpu/packed_q3_k.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_q8_0.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu {

const packed_layout* packed_layout_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0: return &packed_q4_0_layout();
        case ggml_type::q4_1: return &packed_q4_1_layout();
        case ggml_type::q5_1: return &packed_q5_1_layout();
        case ggml_type::q5_0: return &packed_q5_0_layout();
        case ggml_type::q8_0: return &packed_q8_0_layout();
        case ggml_type::q2_k: return &packed_q2_k_layout();
        case ggml_type::q3_k: return &packed_q3_k_layout();
        case ggml_type::q4_k: return &packed_q4_k_layout();
        case ggml_type::q5_k: return &packed_q5_k_layout();
        case ggml_type::q6_k: return &packed_q6_k_layout();
        case ggml_type::f16: return &packed_f16_layout();
        case ggml_type::bf16: return &packed_bf16_layout();
        default: return nullptr;
    }
}

size_t packed_bytes(const packed_layout& l, int64_t n_rows, int64_t n_cols) {
    return size_t(n_rows / k_pack_rows) * l.group_bytes(n_cols) + size_t(n_rows % k_pack_rows) * row_size(l.type, n_cols);
}

void pack_matrix(const packed_layout& l, const void* w, int64_t n_rows, int64_t n_cols, void* dst, int n_threads) {
    const size_t rb = row_size(l.type, n_cols);
    const size_t gb = l.group_bytes(n_cols);
    const int64_t n_groups = n_rows / k_pack_rows;
    const auto* src = static_cast<const uint8_t*>(w);
    auto* out = static_cast<uint8_t*>(dst);
    parallel_for(std::max(1, n_threads), n_groups, [&](int64_t g, int) {
        l.pack(src + size_t(g) * k_pack_rows * rb, rb, n_cols, out + size_t(g) * gb);
    });
    const int64_t n_tail = n_rows % k_pack_rows;
    if (n_tail)
        std::memcpy(out + size_t(n_groups) * gb, src + size_t(n_groups) * k_pack_rows * rb, size_t(n_tail) * rb);
}

// Token counts up to which products take the decode work split (decode batches of the scheduler).
// Each group is still read from memory once: a gemm walks all tokens of a group before the next.
constexpr int64_t k_stream_tokens = 8;
// From this many tokens an ISA's two-group gemm (isa_ops::packed_gemm2_for) is used: it decodes
// the 16 rows once per call, which pays off over several token tiles.
constexpr int64_t k_pair_min_tokens = 16;
static_assert(k_pair_min_tokens > k_stream_tokens, "the two-group gemm needs the prefill items (pairs of groups)");

void mul_mat_packed(const isa_ops& ops, const packed_layout& l, packed_gemm_fn gemm, const void* packed,
                    int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens, float* y, int n_threads) {
    const int64_t n_groups = n_rows / k_pack_rows;
    const size_t gb = l.group_bytes(n_cols);
    const auto* wb = static_cast<const uint8_t*>(packed);
    // Tiny products finish before a thread team could start.
    const int nt = n_rows * n_cols * n_tokens < 32 * 1024 ? 1 : int(std::clamp<int64_t>(n_threads, 1, std::max<int64_t>(n_groups, 1)));
    if (n_groups > 0) {
        size_t a_row_bytes = 0;
        const uint8_t* act = prepare_activations(ops, l.act, x, n_tokens, n_cols, nt, &a_row_bytes);
        // Items are ranges of whole groups, claimed dynamically; bounds[i] .. bounds[i + 1] is item i.
        // Decode and decode batches stream the weights: long contiguous ranges (per-group items cost
        // an atomic hand-off per 8 rows, ~15% of a 4-token product), guided: each item takes
        // 1 / (2 * nt) of the groups still unclaimed, down to 2 groups, so the threads finish within
        // a short item of each other (4 equal items per thread left one thread idle for half an item
        // on average at every product's end; in perf of a 2-thread Q6_K decode the worker's spin-wait
        // fell from 5-6 % to 2-4 % of the samples). Prefill: items of 2 groups, so threads balance while each group is reused by every
        // token from cache; 2 groups are 16 rows, 64 bytes of each token's output row, so two threads
        // do not write halves of the same cache line (1-group items measured 3-5 % slower at 2 threads).
        thread_local std::vector<int64_t> bounds_buf;  // workers read it through the pointer below
        std::vector<int64_t>& bounds = bounds_buf;
        bounds.clear();
        bounds.push_back(0);
        if (n_tokens <= k_stream_tokens) {
            for (int64_t g = 0; g < n_groups;) {
                const int64_t left = n_groups - g;
                g += std::min(left, std::max<int64_t>(2, (left + 2 * nt - 1) / (2 * nt)));
                bounds.push_back(g);
            }
        } else {
            for (int64_t g = 2; g < n_groups + 2; g += 2) bounds.push_back(std::min(g, n_groups));
        }
        const int64_t n_items = int64_t(bounds.size()) - 1;
        const int64_t* bound = bounds.data();
        // Batch-invariant: the gemm of one token for each token (the group stays in cache), so a
        // row's sums do not depend on the gemm's multi-token tiling.
        const bool invariant = batch_invariant() && n_tokens > 1;
        // Prefill items are pairs of groups (above), so an ISA's two-group gemm (same results per
        // row) takes a whole item; the last item of an odd count is one group.
        const packed_gemm_fn gemm2 = n_tokens >= k_pair_min_tokens && !invariant && ops.packed_gemm2_for ? ops.packed_gemm2_for(l.type) : nullptr;
        parallel_for(nt, n_items, [&](int64_t item, int) {
            const int64_t g0 = bound[item], g1 = bound[item + 1];
            if (gemm2 && g1 - g0 == 2) {
                gemm2(wb + size_t(g0) * gb, act, a_row_bytes, n_tokens, n_cols, y + g0 * k_pack_rows, size_t(n_rows));
                return;
            }
            for (int64_t g = g0; g < g1; ++g) {
                if (invariant) {
                    for (int64_t t = 0; t < n_tokens; ++t)
                        gemm(wb + size_t(g) * gb, act + size_t(t) * a_row_bytes, a_row_bytes, 1, n_cols,
                             y + t * n_rows + g * k_pack_rows, size_t(n_rows));
                    continue;
                }
                gemm(wb + size_t(g) * gb, act, a_row_bytes, n_tokens, n_cols, y + g * k_pack_rows, size_t(n_rows));
            }
        });
    }
    const int64_t n_tail = n_rows % k_pack_rows;
    if (n_tail == 0) return;
    // The last rows are plain GGUF rows: the ordinary product writes them into a scratch block.
    std::vector<float> tail(size_t(n_tail * n_tokens));
    mul_mat(ops, l.type, wb + size_t(n_groups) * gb, n_tail, n_cols, x, n_tokens, tail.data(), 1);
    for (int64_t t = 0; t < n_tokens; ++t)
        std::copy_n(&tail[size_t(t * n_tail)], n_tail, y + t * n_rows + n_groups * k_pack_rows);
}

}  // namespace edgellm::kernels::cpu
