// NEON + dotprod gemm over Q8_0 x8 groups (packed_q8_0.cpp). In chunk m, bytes 16*q .. 16*q+15
// hold 8 weights of rows 2q and 2q+1, so one sdot against the token's 8 activation bytes (loaded
// twice into one vector) leaves row 2q's two half sums in lanes 0-1 and row 2q+1's in lanes 2-3;
// a pairwise add at the end of the block turns the 4 vectors into the 8 rows' sums.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_q8_0.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

// T tokens (<= 4): 4 i32 + 2 f32 accumulators per token and 4 weight vectors fit the 32 registers.
template <int T>
void gemm_tile(const uint8_t* g, const act_q8_32* const* a, int64_t nb, float* y, size_t y_stride) {
    float32x4_t acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b, g += k_q8_0_group_block_bytes) {
        const float32x4_t d_lo = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(g))));
        const float32x4_t d_hi = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(g) + 4)));
        int32x4_t s[T][4];
        for (int t = 0; t < T; ++t)
            for (int q = 0; q < 4; ++q) s[t][q] = vdupq_n_s32(0);
        for (int m = 0; m < 4; ++m) {
            const int8_t* c = reinterpret_cast<const int8_t*>(g + 16 + 64 * m);
            const int8x16_t w0 = vld1q_s8(c), w1 = vld1q_s8(c + 16), w2 = vld1q_s8(c + 32), w3 = vld1q_s8(c + 48);
            for (int t = 0; t < T; ++t) {
                const int8x8_t a8 = vld1_s8(a[t][b].qs + 8 * m);
                const int8x16_t aa = vcombine_s8(a8, a8);
                s[t][0] = vdotq_s32(s[t][0], w0, aa);
                s[t][1] = vdotq_s32(s[t][1], w1, aa);
                s[t][2] = vdotq_s32(s[t][2], w2, aa);
                s[t][3] = vdotq_s32(s[t][3], w3, aa);
            }
        }
        for (int t = 0; t < T; ++t) {
            const float da = a[t][b].d;
            const int32x4_t rows_lo = vpaddq_s32(s[t][0], s[t][1]), rows_hi = vpaddq_s32(s[t][2], s[t][3]);
            acc[t][0] = vfmaq_f32(acc[t][0], vcvtq_f32_s32(rows_lo), vmulq_n_f32(d_lo, da));
            acc[t][1] = vfmaq_f32(acc[t][1], vcvtq_f32_s32(rows_hi), vmulq_n_f32(d_hi, da));
        }
    }
    for (int t = 0; t < T; ++t) {
        vst1q_f32(y + size_t(t) * y_stride, acc[t][0]);
        vst1q_f32(y + size_t(t) * y_stride + 4, acc[t][1]);
    }
}

}  // namespace

void packed_q8_0_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK8_0;
    for_each_token_tile<4, act_q8_32>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const act_q8_32* const* a, float* yt) {
        gemm_tile<decltype(width)::value>(g, a, nb, yt, y_stride);
    });
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
