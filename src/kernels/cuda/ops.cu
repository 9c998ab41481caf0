// The element-wise ops on the GPU: rms_norm, rope, softmax, swiglu, add, get_row (embedding
// lookup, dequantizing) and store_kv (writing K/V rows into an F32 or F16 cache). Same math as
// kernels::ref (src/kernels/ref/ref_ops.cpp); reductions run in f32 over the block.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/dequant_blocks.h"

namespace edgellm::kernels::cuda {
namespace {

using namespace detail;

constexpr int k_row_threads = 256;   // threads of the one-block-per-row kernels
constexpr int k_elem_threads = 256;  // threads of the grid-stride element kernels

// ---- rms_norm: one block per token ----

__global__ void __launch_bounds__(k_row_threads)
    rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ weight, float* __restrict__ y, int64_t n,
                    float eps) {
    __shared__ float red[k_warp];
    const float* xt = x + static_cast<int64_t>(blockIdx.x) * n;
    float* yt = y + static_cast<int64_t>(blockIdx.x) * n;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s = fmaf(xt[i], xt[i], s);
    s = block_sum(s, red);
    const float inv = 1.0f / sqrtf(s / static_cast<float>(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yt[i] = xt[i] * inv * weight[i];
}

// ---- rope: one thread per (token, rotated pair), looping over the heads ----
// The angle and the rotation are computed in f64 like the reference (theta reaches thousands of
// radians at long positions, where an f32 angle would already be off by ~1e-4).

__global__ void rope_kernel(float* __restrict__ x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                            const int32_t* __restrict__ positions, float freq_base, float freq_scale,
                            const float* __restrict__ freq_factors, bool neox) {
    const int64_t half = n_rot / 2;
    const int64_t total = n_tokens * half;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = idx / half;
        const int64_t i = idx % half;
        double theta = static_cast<double>(positions[t]) * static_cast<double>(freq_scale) *
                       pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
        if (freq_factors) theta /= static_cast<double>(freq_factors[i]);
        double s, c;
        sincos(theta, &s, &c);
        const int64_t i0 = neox ? i : 2 * i;
        const int64_t i1 = neox ? i + half : 2 * i + 1;
        float* xt = x + t * n_heads * head_dim;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* xh = xt + h * head_dim;
            const double a = xh[i0], b = xh[i1];
            xh[i0] = static_cast<float>(a * c - b * s);
            xh[i1] = static_cast<float>(a * s + b * c);
        }
    }
}

// ---- softmax: one block per row ----

__global__ void __launch_bounds__(k_row_threads) softmax_kernel(float* __restrict__ x, int64_t n) {
    __shared__ float red[k_warp];
    float* xr = x + static_cast<int64_t>(blockIdx.x) * n;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m, red);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += expf(xr[i] - m);
    s = block_sum(s, red);
    const float inv = 1.0f / s;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = expf(xr[i] - m) * inv;
}

// ---- element-wise ----

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up, float* __restrict__ y,
                              int64_t n) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float g = gate[i];
        y[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n) {
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        y[i] += x[i];
}

// ---- get_row: one block per output row ----

constexpr int k_get_row_threads = 128;

template <ggml_type T>
__global__ void __launch_bounds__(k_get_row_threads)
    get_row_kernel(const uint8_t* __restrict__ w, int64_t n_cols, size_t row_bytes, const int32_t* __restrict__ rows,
                   float* __restrict__ dst) {
    const int64_t i = blockIdx.x;
    const uint8_t* wr = w + static_cast<int64_t>(rows[i]) * row_bytes;
    float* out = dst + i * n_cols;
    if constexpr (dq::is_plain<T>) {
        for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x) out[c] = dq::plain_elem<T>(wr, c);
    } else {
        using tr = dq::block_traits<T>;
        const int64_t n_chunks = n_cols / dq::k_chunk;
        for (int64_t c = threadIdx.x; c < n_chunks; c += blockDim.x) {
            float v[dq::k_chunk];
            tr::chunk(wr, c / tr::chunks, static_cast<int>(c % tr::chunks), v);
#pragma unroll
            for (int k = 0; k < dq::k_chunk; ++k) out[c * dq::k_chunk + k] = v[k];
        }
    }
}

template <ggml_type T>
void launch_get_row(const void* w, int64_t n_cols, const int32_t* rows, int64_t n_rows_out, float* dst) {
    require(n_rows_out <= 0x7fffffff, "get_row: too many rows in one call");
    get_row_kernel<T><<<static_cast<unsigned>(n_rows_out), k_get_row_threads>>>(
        static_cast<const uint8_t*>(w), n_cols, row_size(T, n_cols), rows, dst);
    check_launch("get_row launch");
}

// ---- store_kv ----

template <bool F16>
__global__ void store_kv_kernel(const float* __restrict__ k, const float* __restrict__ v, int64_t n_tokens,
                                int64_t kv_dim, void* __restrict__ k_cache, void* __restrict__ v_cache,
                                const int32_t* __restrict__ rows) {
    const int64_t total = n_tokens * kv_dim;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = idx / kv_dim;
        const int64_t c = idx % kv_dim;
        const int64_t dst = static_cast<int64_t>(rows[t]) * kv_dim + c;
        if constexpr (F16) {
            static_cast<uint16_t*>(k_cache)[dst] = dq::f32_to_f16(k[idx]);
            static_cast<uint16_t*>(v_cache)[dst] = dq::f32_to_f16(v[idx]);
        } else {
            static_cast<float*>(k_cache)[dst] = k[idx];
            static_cast<float*>(v_cache)[dst] = v[idx];
        }
    }
}

}  // namespace

void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) {
    require(n >= 0 && n_tokens >= 0, "rms_norm: negative shape");
    require(n_tokens <= 0x7fffffff, "rms_norm: too many tokens in one call");
    if (n == 0 || n_tokens == 0) return;
    rms_norm_kernel<<<static_cast<unsigned>(n_tokens), k_row_threads>>>(x, weight, y, n, eps);
    check_launch("rms_norm launch");
}

void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t n_rot, const int32_t* positions,
          float freq_base, float freq_scale, const float* freq_factors, rope_mode mode) {
    require(n_rot >= 0 && n_rot <= head_dim && n_rot % 2 == 0, "rope: n_rot must be even and <= head_dim");
    require(n_tokens >= 0 && n_heads >= 0, "rope: negative shape");
    const int64_t total = n_tokens * (n_rot / 2);
    if (total == 0 || n_heads == 0) return;
    rope_kernel<<<stride_blocks(total, k_elem_threads), k_elem_threads>>>(
        x, n_tokens, n_heads, head_dim, n_rot, positions, freq_base, freq_scale, freq_factors, mode == rope_mode::neox);
    check_launch("rope launch");
}

void softmax(float* x, int64_t n_rows, int64_t n) {
    require(n_rows >= 0 && n >= 0, "softmax: negative shape");
    require(n_rows <= 0x7fffffff, "softmax: too many rows in one call");
    if (n_rows == 0 || n == 0) return;
    softmax_kernel<<<static_cast<unsigned>(n_rows), k_row_threads>>>(x, n);
    check_launch("softmax launch");
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    if (n <= 0) return;
    swiglu_kernel<<<stride_blocks(n, k_elem_threads), k_elem_threads>>>(gate, up, y, n);
    check_launch("swiglu launch");
}

void add(float* y, const float* x, int64_t n) {
    if (n <= 0) return;
    add_kernel<<<stride_blocks(n, k_elem_threads), k_elem_threads>>>(y, x, n);
    check_launch("add launch");
}

void get_row(ggml_type wt, const void* w, int64_t n_cols, const int32_t* rows, int64_t n_rows_out, float* dst) {
    require(supports(wt), "get_row: weight type " + std::string(type_name(wt)) + " is not supported on CUDA");
    require(n_cols >= 0 && n_rows_out >= 0, "get_row: negative shape");
    const int64_t bs = type_traits(wt).block_size;
    require(n_cols % bs == 0, "get_row: n_cols " + std::to_string(n_cols) + " is not a whole number of " +
                                  std::string(type_name(wt)) + " blocks of " + std::to_string(bs));
    if (n_cols == 0 || n_rows_out == 0) return;
    switch (wt) {
        case ggml_type::f32: return launch_get_row<ggml_type::f32>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::f16: return launch_get_row<ggml_type::f16>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::bf16: return launch_get_row<ggml_type::bf16>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q4_0: return launch_get_row<ggml_type::q4_0>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q4_1: return launch_get_row<ggml_type::q4_1>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q5_0: return launch_get_row<ggml_type::q5_0>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q5_1: return launch_get_row<ggml_type::q5_1>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q8_0: return launch_get_row<ggml_type::q8_0>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q2_k: return launch_get_row<ggml_type::q2_k>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q3_k: return launch_get_row<ggml_type::q3_k>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q4_k: return launch_get_row<ggml_type::q4_k>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q5_k: return launch_get_row<ggml_type::q5_k>(w, n_cols, rows, n_rows_out, dst);
        case ggml_type::q6_k: return launch_get_row<ggml_type::q6_k>(w, n_cols, rows, n_rows_out, dst);
        default: break;
    }
}

void store_kv(const float* k, const float* v, int64_t n_tokens, int64_t kv_dim, void* k_cache, void* v_cache,
              ggml_type kv_type, const int32_t* rows) {
    require(kv_type == ggml_type::f32 || kv_type == ggml_type::f16,
            "store_kv: KV cache type must be F32 or F16 on CUDA, got " + std::string(type_name(kv_type)));
    require(n_tokens >= 0 && kv_dim >= 0, "store_kv: negative shape");
    const int64_t total = n_tokens * kv_dim;
    if (total == 0) return;
    if (kv_type == ggml_type::f16)
        store_kv_kernel<true><<<stride_blocks(total, k_elem_threads), k_elem_threads>>>(k, v, n_tokens, kv_dim,
                                                                                         k_cache, v_cache, rows);
    else
        store_kv_kernel<false><<<stride_blocks(total, k_elem_threads), k_elem_threads>>>(k, v, n_tokens, kv_dim,
                                                                                          k_cache, v_cache, rows);
    check_launch("store_kv launch");
}

}  // namespace edgellm::kernels::cuda
