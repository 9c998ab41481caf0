// Optional int8 decode path of mul_mat for Q4_0 and Q8_0 weights: the activations are quantized
// once per call to blocks of 32 int8 with an f32 scale (like the CPU path's act_q8_32, and ggml's
// q8_1 with the scale kept in f32), then each lane multiplies whole weight blocks with __dp4a
// (4 int8 products per instruction) and scales the integer sum once per block.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/dequant_blocks.h"

namespace edgellm::kernels::cuda {
namespace {

using namespace detail;

// One quantized block of 32 activations: x ~= d * qs, s = d * sum(qs). 40 bytes, 8-aligned, so
// the int8 values load as 32-bit words.
struct act_block {
    float d;
    float s;
    int8_t qs[32];
};
static_assert(sizeof(act_block) == 40);

constexpr int k_quant_warps = 8;

// One warp per block of 32 activations (n_blocks = n_tokens * n_cols / 32, in token-major order,
// which is also the order of x).
__global__ void __launch_bounds__(k_quant_warps * k_warp)
    quantize_act(const float* __restrict__ x, int64_t n_blocks, act_block* __restrict__ out) {
    const int lane = threadIdx.x % k_warp;
    const int64_t ib = static_cast<int64_t>(blockIdx.x) * k_quant_warps + threadIdx.x / k_warp;
    if (ib >= n_blocks) return;  // uniform per warp
    const float v = x[ib * 32 + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    int q = __float2int_rn(v * id);
    q = q > 127 ? 127 : (q < -127 ? -127 : q);
    const float sum = warp_sum(static_cast<float>(q));  // |sum| <= 32 * 127: exact in f32
    out[ib].qs[lane] = static_cast<int8_t>(q);
    if (lane == 0) {
        out[ib].d = d;
        out[ib].s = d * sum;
    }
}

constexpr int k_mv_warps = 4;
constexpr int k_max_tokens = static_cast<int>(k_mul_mat_vec_max_tokens);

// 4 bytes of a weight block that is only 2-byte aligned (18- and 34-byte blocks), as one word.
__device__ __forceinline__ int load_i32_a2(const uint8_t* p) {
    const auto* h = reinterpret_cast<const uint16_t*>(p);
    return static_cast<int>(static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16));
}

// Integer dot of one weight block with one activation block, and the block's contribution.
template <ggml_type T>
__device__ __forceinline__ float block_dot(const uint8_t* wb, const act_block& a);

// Q4_0: word k of qs holds elements 4k..4k+3 (low nibbles) and 16+4k..16+4k+3 (high nibbles);
// sum_i d_w (q_i - 8) d_x xq_i = d_w (d_x sum_i q_i xq_i - 8 s_x).
template <>
__device__ __forceinline__ float block_dot<ggml_type::q4_0>(const uint8_t* wb, const act_block& a) {
    const auto* b = reinterpret_cast<const q4_0_block*>(wb);
    const int* xq = reinterpret_cast<const int*>(a.qs);
    int sumi = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const int v = load_i32_a2(b->qs + 4 * k);
        sumi = __dp4a(v & 0x0F0F0F0F, xq[k], sumi);
        sumi = __dp4a((v >> 4) & 0x0F0F0F0F, xq[k + 4], sumi);
    }
    const float d = dq::f16_to_f32(b->d);
    return d * (a.d * static_cast<float>(sumi) - 8.0f * a.s);
}

template <>
__device__ __forceinline__ float block_dot<ggml_type::q8_0>(const uint8_t* wb, const act_block& a) {
    const auto* b = reinterpret_cast<const q8_0_block*>(wb);
    const int* xq = reinterpret_cast<const int*>(a.qs);
    int sumi = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) sumi = __dp4a(load_i32_a2(reinterpret_cast<const uint8_t*>(b->qs) + 4 * k), xq[k], sumi);
    return dq::f16_to_f32(b->d) * a.d * static_cast<float>(sumi);
}

// One warp per weight row; lane l takes the row's blocks l, l + 32, ...
template <ggml_type T>
__global__ void __launch_bounds__(k_mv_warps * k_warp)
    mul_mat_vec_int8(const uint8_t* __restrict__ w, int64_t n_rows, int64_t n_blocks, size_t row_bytes,
                     const act_block* __restrict__ xq, int n_tokens, float* __restrict__ y) {
    using block = typename dq::block_traits<T>::block;
    const int lane = threadIdx.x % k_warp;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * k_mv_warps + threadIdx.x / k_warp;
    if (row >= n_rows) return;
    const uint8_t* wr = w + row * row_bytes;

    float acc[k_max_tokens];
#pragma unroll
    for (int t = 0; t < k_max_tokens; ++t) acc[t] = 0.0f;

    for (int64_t ib = lane; ib < n_blocks; ib += k_warp) {
        const uint8_t* wb = wr + ib * sizeof(block);
#pragma unroll
        for (int t = 0; t < k_max_tokens; ++t)
            if (t < n_tokens) acc[t] += block_dot<T>(wb, xq[t * n_blocks + ib]);
    }
#pragma unroll
    for (int t = 0; t < k_max_tokens; ++t) {
        if (t < n_tokens) {
            const float s = warp_sum(acc[t]);
            if (lane == 0) y[t * n_rows + row] = s;
        }
    }
}

}  // namespace

bool supports_int8(ggml_type wt) { return wt == ggml_type::q4_0 || wt == ggml_type::q8_0; }

size_t mul_mat_int8_scratch_bytes(int64_t n_cols, int64_t n_tokens) {
    if (n_cols <= 0 || n_tokens <= 0) return 0;
    return static_cast<size_t>(n_tokens) * static_cast<size_t>((n_cols + 31) / 32) * sizeof(act_block);
}

void mul_mat_int8(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens,
                  float* y, void* scratch) {
    require(supports_int8(wt),
            "mul_mat_int8: weight type " + std::string(type_name(wt)) + " has no int8 path (Q4_0 and Q8_0 do)");
    require(n_rows >= 0 && n_cols >= 0 && n_tokens >= 0, "mul_mat_int8: negative shape");
    require(n_cols % 32 == 0, "mul_mat_int8: n_cols " + std::to_string(n_cols) + " is not a whole number of blocks of 32");
    require(n_tokens <= k_mul_mat_vec_max_tokens, "mul_mat_int8: at most " + std::to_string(k_mul_mat_vec_max_tokens) +
                                                      " tokens per call, got " + std::to_string(n_tokens));
    if (n_rows == 0 || n_tokens == 0) return;
    if (n_cols == 0) {
        fill_bytes(y, 0, static_cast<size_t>(n_rows * n_tokens) * sizeof(float));
        return;
    }
    require(scratch != nullptr, "mul_mat_int8: no scratch buffer");
    const int64_t n_blocks = n_cols / 32;
    auto* xq = static_cast<act_block*>(scratch);
    const int64_t n_act = n_tokens * n_blocks;
    quantize_act<<<blocks_for(n_act, k_quant_warps), k_quant_warps * k_warp>>>(x, n_act, xq);
    check_launch("mul_mat_int8 (quantize activations) launch");

    const size_t row_bytes = row_size(wt, n_cols);
    const auto* wb = static_cast<const uint8_t*>(w);
    const unsigned grid = blocks_for(n_rows, k_mv_warps);
    if (wt == ggml_type::q4_0)
        mul_mat_vec_int8<ggml_type::q4_0>
            <<<grid, k_mv_warps * k_warp>>>(wb, n_rows, n_blocks, row_bytes, xq, static_cast<int>(n_tokens), y);
    else
        mul_mat_vec_int8<ggml_type::q8_0>
            <<<grid, k_mv_warps * k_warp>>>(wb, n_rows, n_blocks, row_bytes, xq, static_cast<int>(n_tokens), y);
    check_launch("mul_mat_int8 launch");
}

}  // namespace edgellm::kernels::cuda
