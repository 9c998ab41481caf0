// mul_mat on the GPU: y[t][r] = sum_c w[r][c] * x[t][c] for every weight type of cuda_ops.h.
// Decode (few tokens): one warp per weight row, each lane dequantizes 8-element chunks of the
// row's blocks (dequant_blocks.h) and dots them with every token, then a warp-shuffle sum.
// Prefill: a 64x64 output tile per block, K in steps of 32; weight tiles are dequantized into
// shared memory as they are loaded, so every weight element is dequantized once per 64 tokens.
// Both accumulate in f32 with FMA (the reference accumulates in f64, see tests/cuda).
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/dequant_blocks.h"

namespace edgellm::kernels::cuda {
namespace {

using namespace detail;

// ---- decode: warp per row ----

constexpr int k_mv_warps = 4;  // weight rows (warps) per thread block
constexpr int k_mv_max_tokens = static_cast<int>(k_mul_mat_vec_max_tokens);

// Quantized weights: lane l takes the row's chunks l, l + 32, ... (neighbouring lanes read
// neighbouring bytes of the same block).
template <ggml_type T>
__global__ void __launch_bounds__(k_mv_warps * k_warp)
    mul_mat_vec_q(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_cols, size_t row_bytes,
                  const float* __restrict__ x, int n_tokens, float* __restrict__ y) {
    using tr = dq::block_traits<T>;
    const int lane = threadIdx.x % k_warp;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * k_mv_warps + threadIdx.x / k_warp;
    if (row >= n_rows) return;  // uniform across the warp; no block barrier follows
    const uint8_t* wr = w + row * row_bytes;
    const int64_t n_chunks = n_cols / dq::k_chunk;

    float acc[k_mv_max_tokens];
#pragma unroll
    for (int t = 0; t < k_mv_max_tokens; ++t) acc[t] = 0.0f;

    for (int64_t c = lane; c < n_chunks; c += k_warp) {
        float wv[dq::k_chunk];
        tr::chunk(wr, c / tr::chunks, static_cast<int>(c % tr::chunks), wv);
        const float* xc = x + c * dq::k_chunk;
#pragma unroll
        for (int t = 0; t < k_mv_max_tokens; ++t) {
            if (t < n_tokens) {
                const float* xt = xc + t * n_cols;
#pragma unroll
                for (int i = 0; i < dq::k_chunk; ++i) acc[t] = fmaf(wv[i], xt[i], acc[t]);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < k_mv_max_tokens; ++t) {
        if (t < n_tokens) {  // n_tokens is uniform: every lane joins the shuffle
            const float s = warp_sum(acc[t]);
            if (lane == 0) y[t * n_rows + row] = s;
        }
    }
}

// F32 / F16 / BF16 weights: lane l takes columns l, l + 32, ... (any n_cols).
template <ggml_type T>
__global__ void __launch_bounds__(k_mv_warps * k_warp)
    mul_mat_vec_plain(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_cols, size_t row_bytes,
                      const float* __restrict__ x, int n_tokens, float* __restrict__ y) {
    const int lane = threadIdx.x % k_warp;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * k_mv_warps + threadIdx.x / k_warp;
    if (row >= n_rows) return;
    const uint8_t* wr = w + row * row_bytes;

    float acc[k_mv_max_tokens];
#pragma unroll
    for (int t = 0; t < k_mv_max_tokens; ++t) acc[t] = 0.0f;

    for (int64_t c = lane; c < n_cols; c += k_warp) {
        const float wv = dq::plain_elem<T>(wr, c);
#pragma unroll
        for (int t = 0; t < k_mv_max_tokens; ++t)
            if (t < n_tokens) acc[t] = fmaf(wv, x[t * n_cols + c], acc[t]);
    }
#pragma unroll
    for (int t = 0; t < k_mv_max_tokens; ++t) {
        if (t < n_tokens) {
            const float s = warp_sum(acc[t]);
            if (lane == 0) y[t * n_rows + row] = s;
        }
    }
}

// ---- prefill: shared-memory tiled GEMM ----

constexpr int k_tile_rows = 64;    // weight rows per block tile
constexpr int k_tile_tokens = 64;  // tokens per block tile
constexpr int k_tile_k = 32;       // columns per step: 4 chunks, inside one block of every type
constexpr int k_gemm_threads = 256;
constexpr int k_gemm_tx = 16;  // threads along rows; each thread owns 4 rows x 4 tokens
constexpr int k_sub = 4;
static_assert(k_tile_rows == k_gemm_tx * k_sub && k_tile_tokens == (k_gemm_threads / k_gemm_tx) * k_sub);
// The loaders: thread tid fills 8 consecutive columns (one chunk) of row / token tid / 4.
static_assert(k_gemm_threads == k_tile_rows * (k_tile_k / dq::k_chunk));
static_assert(k_gemm_threads == k_tile_tokens * (k_tile_k / dq::k_chunk));

// Shared tiles are stored k-major, [k][row] and [k][token], padded by one float so the loader's
// column writes (8 lanes' rows x 4 chunks per warp) hit 32 different banks.
template <ggml_type T>
__global__ void __launch_bounds__(k_gemm_threads)
    mul_mat_gemm(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_cols, size_t row_bytes,
                 const float* __restrict__ x, int64_t n_tokens, float* __restrict__ y) {
    __shared__ float ws[k_tile_k][k_tile_rows + 1];
    __shared__ float xs[k_tile_k][k_tile_tokens + 1];

    const int tid = threadIdx.x;
    const int tx = tid % k_gemm_tx;  // row lane: rows tx, tx + 16, ...
    const int ty = tid / k_gemm_tx;  // token lane: tokens ty, ty + 16, ...
    const int64_t row0 = static_cast<int64_t>(blockIdx.x) * k_tile_rows;
    const int64_t tok0 = static_cast<int64_t>(blockIdx.y) * k_tile_tokens;

    const int ld_i = tid / (k_tile_k / dq::k_chunk);  // row / token this thread loads
    const int ld_q = tid % (k_tile_k / dq::k_chunk);  // chunk of the k step it loads
    const int64_t ld_row = row0 + ld_i;
    const int64_t ld_tok = tok0 + ld_i;
    const uint8_t* ld_wrow = w + (ld_row < n_rows ? ld_row : 0) * row_bytes;
    const float* ld_xrow = x + (ld_tok < n_tokens ? ld_tok : 0) * n_cols;

    float acc[k_sub][k_sub];
#pragma unroll
    for (int i = 0; i < k_sub; ++i)
#pragma unroll
        for (int j = 0; j < k_sub; ++j) acc[i][j] = 0.0f;

    for (int64_t k0 = 0; k0 < n_cols; k0 += k_tile_k) {
        const int64_t c0 = k0 + ld_q * dq::k_chunk;
        float wv[dq::k_chunk];
        if (ld_row < n_rows) {
            if constexpr (dq::is_plain<T>) {
#pragma unroll
                for (int i = 0; i < dq::k_chunk; ++i)
                    wv[i] = c0 + i < n_cols ? dq::plain_elem<T>(ld_wrow, c0 + i) : 0.0f;
            } else {
                // n_cols is a whole number of blocks (a multiple of 32), so the chunk exists.
                using tr = dq::block_traits<T>;
                const int64_t c = c0 / dq::k_chunk;
                tr::chunk(ld_wrow, c / tr::chunks, static_cast<int>(c % tr::chunks), wv);
            }
        } else {
#pragma unroll
            for (int i = 0; i < dq::k_chunk; ++i) wv[i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < dq::k_chunk; ++i) ws[ld_q * dq::k_chunk + i][ld_i] = wv[i];
#pragma unroll
        for (int i = 0; i < dq::k_chunk; ++i)
            xs[ld_q * dq::k_chunk + i][ld_i] = (ld_tok < n_tokens && c0 + i < n_cols) ? ld_xrow[c0 + i] : 0.0f;
        __syncthreads();

#pragma unroll 8
        for (int kk = 0; kk < k_tile_k; ++kk) {
            float a[k_sub], b[k_sub];
#pragma unroll
            for (int i = 0; i < k_sub; ++i) a[i] = ws[kk][tx + k_gemm_tx * i];
#pragma unroll
            for (int j = 0; j < k_sub; ++j) b[j] = xs[kk][ty + k_gemm_tx * j];
#pragma unroll
            for (int i = 0; i < k_sub; ++i)
#pragma unroll
                for (int j = 0; j < k_sub; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();  // the next step overwrites the tiles
    }

#pragma unroll
    for (int j = 0; j < k_sub; ++j) {
        const int64_t t = tok0 + ty + k_gemm_tx * j;
        if (t >= n_tokens) continue;
#pragma unroll
        for (int i = 0; i < k_sub; ++i) {
            const int64_t r = row0 + tx + k_gemm_tx * i;
            if (r < n_rows) y[t * n_rows + r] = acc[i][j];
        }
    }
}

template <ggml_type T>
void launch_mul_mat(const void* w, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens, float* y) {
    const size_t row_bytes = row_size(T, n_cols);
    const auto* wb = static_cast<const uint8_t*>(w);
    if (n_tokens <= k_mul_mat_vec_max_tokens) {
        const unsigned grid = blocks_for(n_rows, k_mv_warps);
        if constexpr (dq::is_plain<T>)
            mul_mat_vec_plain<T><<<grid, k_mv_warps * k_warp>>>(wb, n_rows, n_cols, row_bytes, x,
                                                                 static_cast<int>(n_tokens), y);
        else
            mul_mat_vec_q<T><<<grid, k_mv_warps * k_warp>>>(wb, n_rows, n_cols, row_bytes, x,
                                                             static_cast<int>(n_tokens), y);
        check_launch("mul_mat (decode) launch");
        return;
    }
    const int64_t token_tiles = (n_tokens + k_tile_tokens - 1) / k_tile_tokens;
    require(token_tiles <= 65535, "mul_mat: too many tokens in one call (" + std::to_string(n_tokens) + ")");
    const dim3 grid(blocks_for(n_rows, k_tile_rows), static_cast<unsigned>(token_tiles));
    mul_mat_gemm<T><<<grid, k_gemm_threads>>>(wb, n_rows, n_cols, row_bytes, x, n_tokens, y);
    check_launch("mul_mat (gemm) launch");
}

}  // namespace

bool supports(ggml_type wt) {
    switch (wt) {
        case ggml_type::f32:
        case ggml_type::f16:
        case ggml_type::bf16:
        case ggml_type::q4_0:
        case ggml_type::q4_1:
        case ggml_type::q5_0:
        case ggml_type::q5_1:
        case ggml_type::q8_0:
        case ggml_type::q2_k:
        case ggml_type::q3_k:
        case ggml_type::q4_k:
        case ggml_type::q5_k:
        case ggml_type::q6_k: return true;
        default: return false;
    }
}

void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens,
             float* y) {
    require(supports(wt), "mul_mat: weight type " + std::string(type_name(wt)) + " is not supported on CUDA");
    require(n_rows >= 0 && n_cols >= 0 && n_tokens >= 0, "mul_mat: negative shape");
    const int64_t bs = type_traits(wt).block_size;
    require(n_cols % bs == 0, "mul_mat: n_cols " + std::to_string(n_cols) + " is not a whole number of " +
                                  std::string(type_name(wt)) + " blocks of " + std::to_string(bs));
    if (n_rows == 0 || n_tokens == 0) return;
    if (n_cols == 0) {
        fill_bytes(y, 0, static_cast<size_t>(n_rows * n_tokens) * sizeof(float));
        return;
    }
    switch (wt) {
        case ggml_type::f32: return launch_mul_mat<ggml_type::f32>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::f16: return launch_mul_mat<ggml_type::f16>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::bf16: return launch_mul_mat<ggml_type::bf16>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q4_0: return launch_mul_mat<ggml_type::q4_0>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q4_1: return launch_mul_mat<ggml_type::q4_1>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q5_0: return launch_mul_mat<ggml_type::q5_0>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q5_1: return launch_mul_mat<ggml_type::q5_1>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q8_0: return launch_mul_mat<ggml_type::q8_0>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q2_k: return launch_mul_mat<ggml_type::q2_k>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q3_k: return launch_mul_mat<ggml_type::q3_k>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q4_k: return launch_mul_mat<ggml_type::q4_k>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q5_k: return launch_mul_mat<ggml_type::q5_k>(w, n_rows, n_cols, x, n_tokens, y);
        case ggml_type::q6_k: return launch_mul_mat<ggml_type::q6_k>(w, n_rows, n_cols, x, n_tokens, y);
        default: break;
    }
}

}  // namespace edgellm::kernels::cuda
