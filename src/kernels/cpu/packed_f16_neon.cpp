// NEON gemms over F16 / BF16 x8 groups (packed_f16.cpp): a register tile of the group's 8 rows
// x up to 3 tokens (24 accumulators of 4 f32). Per 4 columns: each token's activations load once,
// each row's 4 weights load and widen to f32 once (F16: fcvtl; BF16: a 16-bit shift, vshll), and
// 8 * T FMAs follow, so the loop is bound by the FMAs rather than by loads as a one-row-at-a-time
// dot is. Arithmetic in f32 (no FP16 FMLAL: its f16 activations would round them). The columns
// past the last 32-block (stored row after row) run 4 at a time, then one at a time.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstring>

#include "kernels/cpu/packed_f16.h"
#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_tiles.h"
#include "quant/fp16.h"

namespace edgellm::kernels::cpu {
namespace {

template <bool BF16>
inline float32x4_t widen4(const uint8_t* p) {
    const uint16x4_t v = vld1_u16(reinterpret_cast<const uint16_t*>(p));
    if constexpr (BF16) {
        return vreinterpretq_f32_u32(vshll_n_u16(v, 16));
    } else {
        return vcvt_f32_f16(vreinterpret_f16_u16(v));
    }
}

template <bool BF16>
inline float widen1(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    if constexpr (BF16) {
        return bf16_to_fp32(v);
    } else {
        return fp16_to_fp32(v);
    }
}

template <int T, bool BF16>
void gemm_tile(const uint8_t* g, const float* const* x, int64_t n_cols, float* y, size_t y_stride) {
    constexpr int R = k_pack_rows;
    float32x4_t acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = vdupq_n_f32(0.0f);
    const int64_t nb = n_cols / k_f16_block_cols;
    for (int64_t b = 0; b < nb; ++b, g += 2 * R * k_f16_block_cols) {
        for (int k = 0; k < int(k_f16_block_cols); k += 4) {
            const int64_t c = b * k_f16_block_cols + k;
            float32x4_t xv[T];
            for (int t = 0; t < T; ++t) xv[t] = vld1q_f32(x[t] + c);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const float32x4_t w = widen4<BF16>(g + 64 * r + 2 * k);
#pragma GCC unroll 4
                for (int t = 0; t < T; ++t) acc[r][t] = vfmaq_f32(acc[r][t], w, xv[t]);
            }
        }
    }
    const int64_t tail = n_cols % k_f16_block_cols, c0 = nb * k_f16_block_cols;
    int64_t k = 0;
    for (; k + 4 <= tail; k += 4) {
        float32x4_t xv[T];
        for (int t = 0; t < T; ++t) xv[t] = vld1q_f32(x[t] + c0 + k);
        for (int r = 0; r < R; ++r) {
            const float32x4_t w = widen4<BF16>(g + 2 * (r * tail + k));
            for (int t = 0; t < T; ++t) acc[r][t] = vfmaq_f32(acc[r][t], w, xv[t]);
        }
    }
    float sum[R][T];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) sum[r][t] = vaddvq_f32(acc[r][t]);
    for (; k < tail; ++k)
        for (int r = 0; r < R; ++r) {
            const float w = widen1<BF16>(g + 2 * (r * tail + k));
            for (int t = 0; t < T; ++t) sum[r][t] += w * x[t][c0 + k];
        }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < R; ++r) y[size_t(t) * y_stride + r] = sum[r][t];
}

template <bool BF16>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    for_each_token_tile<3, float>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const float* const* x, float* yt) {
        gemm_tile<decltype(width)::value, BF16>(g, x, n_cols, yt, y_stride);
    });
}

}  // namespace

void packed_f16_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                          float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_bf16_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
