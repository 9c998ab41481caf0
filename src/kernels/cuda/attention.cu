// Attention over a contiguous F32 / F16 KV cache on the GPU, flash-style: one thread block per
// (query token, head) walks the keys in tiles of 64, keeping a running max and sum (online
// softmax, Milakov & Gimelshein 2018; FlashAttention, Dao et al. 2022), so no score row of n_kv
// floats is ever materialised and any n_kv works with fixed shared memory.
//
// Per tile: each warp scores keys (lanes split head_dim, shuffle sum) into shared memory; the
// block takes the tile max, rescales its running output by exp(m_old - m_new), turns the scores
// into weights in shared memory, and each thread accumulates the weighted V rows for the
// dimensions it owns (tid, tid + 128). Shared memory: head_dim (<= 256) + 64 floats.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/dequant_blocks.h"

namespace edgellm::kernels::cuda {
namespace {

using namespace detail;

constexpr int k_att_threads = 128;
constexpr int k_att_warps = k_att_threads / k_warp;
constexpr int k_att_tile = 64;  // keys per tile; <= k_att_threads (one thread per key turns scores into weights)
constexpr int k_att_max_dim = static_cast<int>(k_attention_max_head_dim);
constexpr int k_att_dims_per_thread = k_att_max_dim / k_att_threads;
static_assert(k_att_tile <= k_att_threads && k_att_max_dim % k_att_threads == 0);

template <bool F16>
__device__ __forceinline__ float load_kv(const void* cache, int64_t i) {
    if constexpr (F16)
        return dq::f16_to_f32(static_cast<const uint16_t*>(cache)[i]);
    else
        return static_cast<const float*>(cache)[i];
}

template <bool F16>
__global__ void __launch_bounds__(k_att_threads)
    attention_kernel(const float* __restrict__ q, const void* __restrict__ k_cache, const void* __restrict__ v_cache,
                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, const int32_t* __restrict__ n_kv_of,
                     float scale, float* __restrict__ out) {
    __shared__ float q_s[k_att_max_dim];
    __shared__ float p_s[k_att_tile];

    const int64_t t = blockIdx.x / n_head;
    const int64_t h = blockIdx.x % n_head;
    const int64_t hk = h / (n_head / n_head_kv);
    const int tid = threadIdx.x;
    const int lane = tid % k_warp, warp = tid / k_warp;
    const int64_t n_kv = n_kv_of[t];
    const int64_t row_elems = n_head_kv * head_dim;  // one cache row: every KV head
    const int64_t head_off = hk * head_dim;
    const float* qh = q + (t * n_head + h) * head_dim;
    float* oh = out + (t * n_head + h) * head_dim;

    for (int64_t d = tid; d < head_dim; d += k_att_threads) q_s[d] = qh[d];
    __syncthreads();

    float acc[k_att_dims_per_thread];
#pragma unroll
    for (int k = 0; k < k_att_dims_per_thread; ++k) acc[k] = 0.0f;
    float m = -INFINITY;  // running max of the scores so far
    float l = 0.0f;       // running sum of exp(score - m)

    for (int64_t j0 = 0; j0 < n_kv; j0 += k_att_tile) {
        const int nt = static_cast<int>(n_kv - j0 < k_att_tile ? n_kv - j0 : k_att_tile);

        // Scores of this tile: warp w takes keys w, w + 4, ...
        for (int jj = warp; jj < nt; jj += k_att_warps) {
            const int64_t base = (j0 + jj) * row_elems + head_off;
            float s = 0.0f;
            for (int64_t d = lane; d < head_dim; d += k_warp) s = fmaf(q_s[d], load_kv<F16>(k_cache, base + d), s);
            s = warp_sum(s);
            if (lane == 0) p_s[jj] = s * scale;
        }
        __syncthreads();

        float tile_max = -INFINITY;
        for (int jj = 0; jj < nt; ++jj) tile_max = fmaxf(tile_max, p_s[jj]);
        const float m_new = fmaxf(m, tile_max);
        const float corr = m == -INFINITY ? 0.0f : expf(m - m_new);
        __syncthreads();  // every thread has read the raw scores before they are overwritten

        if (tid < nt) p_s[tid] = expf(p_s[tid] - m_new);
        __syncthreads();

        float tile_sum = 0.0f;
        for (int jj = 0; jj < nt; ++jj) tile_sum += p_s[jj];
        l = l * corr + tile_sum;
#pragma unroll
        for (int k = 0; k < k_att_dims_per_thread; ++k) {
            const int64_t d = tid + static_cast<int64_t>(k) * k_att_threads;
            if (d < head_dim) {
                float a = acc[k] * corr;
                const int64_t base = j0 * row_elems + head_off + d;
                for (int jj = 0; jj < nt; ++jj) a = fmaf(p_s[jj], load_kv<F16>(v_cache, base + jj * row_elems), a);
                acc[k] = a;
            }
        }
        m = m_new;
        __syncthreads();  // the next tile overwrites p_s
    }

    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int k = 0; k < k_att_dims_per_thread; ++k) {
        const int64_t d = tid + static_cast<int64_t>(k) * k_att_threads;
        if (d < head_dim) oh[d] = acc[k] * inv;
    }
}

}  // namespace

void attention(const float* q, const void* k_cache, const void* v_cache, ggml_type kv_type, int64_t n_head,
               int64_t n_head_kv, int64_t head_dim, const int32_t* n_kv, int64_t n_tokens, float scale, float* out) {
    require(kv_type == ggml_type::f32 || kv_type == ggml_type::f16,
            "attention: KV cache type must be F32 or F16 on CUDA, got " + std::string(type_name(kv_type)));
    require(n_head_kv > 0 && n_head > 0 && n_head % n_head_kv == 0,
            "attention: n_head (" + std::to_string(n_head) + ") must be a positive multiple of n_head_kv (" +
                std::to_string(n_head_kv) + ")");
    require(head_dim > 0 && head_dim <= k_attention_max_head_dim,
            "attention: head_dim " + std::to_string(head_dim) + " is outside 1.." +
                std::to_string(k_attention_max_head_dim));
    require(n_tokens >= 0, "attention: negative n_tokens");
    if (n_tokens == 0) return;
    const int64_t n_blocks = n_tokens * n_head;
    require(n_blocks <= 0x7fffffff, "attention: too many (token, head) pairs in one call");
    if (kv_type == ggml_type::f16)
        attention_kernel<true><<<static_cast<unsigned>(n_blocks), k_att_threads>>>(q, k_cache, v_cache, n_head, n_head_kv,
                                                                                   head_dim, n_kv, scale, out);
    else
        attention_kernel<false><<<static_cast<unsigned>(n_blocks), k_att_threads>>>(
            q, k_cache, v_cache, n_head, n_head_kv, head_dim, n_kv, scale, out);
    check_launch("attention launch");
}

}  // namespace edgellm::kernels::cuda
