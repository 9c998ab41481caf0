// NEON + dotprod gemm over Q4_K x8 groups (packed_q4_k.cpp). In each 32-byte chunk c of a
// half-pair j, bytes 16*h .. 16*h+15 hold rows 4h..4h+3, 4 bytes per row: the low nibbles are
// elements 4c..4c+3 of sub-block 2j, the high nibbles those of sub-block 2j + 1. So per sub-block
// and half h, 8 sdots by lane c % 4 of the activation vector holding elements 4c..4c+3
// (vdotq_laneq_s32) leave the 4 rows' sub-block dots in one i32 vector, and one multiply-add by
// the rows' scales accumulates them. The mins term, sum over sub-blocks of min * (sum of the
// sub-block's activations), comes from the bsums pairs and is taken off the float accumulators
// first. The halves run one after the other, so that the inner loop of a 4-token tile (per
// token the half's i32 sum, a sub-block sum and an activation vector, plus the chunk vectors)
// fits the 32 registers; the f32 accumulators are touched once per half and super-block.
// i32 bounds: a sub-block dot is at most 32 * 15 * 128 = 61440, times a scale <= 63, 8 summed:
// 2^25; the mins term is at most 8 * 63 * 4096 (an i16 bsums pair is at most 32 * 128).
// Q5_K (Q5 = true, same code, packed_q4_k.cpp's Q5_K x8): each nibble is ORed with its fifth bit,
// bit 2j + H of the chunk's qh vector moved to bit 4 by a per-byte shift (vshlq_u8 by 4 - 2j - H);
// values 0..31 stay within the signed bytes sdot takes, sums within 2^26.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <utility>

#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

// Sum over sub-blocks s of mn[s] (the 8 rows' mins, i16) times lane s of pairs: rows 0-3 in
// val[0], rows 4-7 in val[1]. The lane index must be a constant, hence the pack.
template <int... S>
inline int32x4x2_t mins_dot(const int16x8_t* mn, int16x8_t pairs, std::integer_sequence<int, S...>) {
    int32x4x2_t m{{vdupq_n_s32(0), vdupq_n_s32(0)}};
    ((m.val[0] = vmlal_laneq_s16(m.val[0], vget_low_s16(mn[S]), pairs, S),
      m.val[1] = vmlal_high_laneq_s16(m.val[1], mn[S], pairs, S)),
     ...);
    return m;
}

// 4 rows' dots of 4 consecutive chunks (w[k]: their nibbles for 4 rows) with x, chunk k by lane k.
inline int32x4_t dot4(int32x4_t acc, const int8x16_t* w, int8x16_t x) {
    acc = vdotq_laneq_s32(acc, w[0], x, 0);
    acc = vdotq_laneq_s32(acc, w[1], x, 1);
    acc = vdotq_laneq_s32(acc, w[2], x, 2);
    return vdotq_laneq_s32(acc, w[3], x, 3);
}

// One sub-block, 4 rows: nibble H of the 8 chunks at q (32 bytes apart, already at the half)
// against each token's 32 activations at x[t], added into sub[t].
// Q5: qh (the chunks' fifth-bit vectors, 32 bytes apart, already at the half) and shift (the
// per-byte shift that brings bit 2j + H to bit 4).
template <int H, int T, bool Q5>
inline void sub_block_dots(const uint8_t* q, const int8_t* const* x, int32x4_t* sub, const uint8_t* qh, int8x16_t shift) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int k = 0; k < 2; ++k) {
        int8x16_t w[4];
        for (int c = 0; c < 4; ++c) {
            uint8x16_t v = vld1q_u8(q + 32 * (4 * k + c));
            v = H ? vshrq_n_u8(v, 4) : vandq_u8(v, m4);
            if constexpr (Q5) v = vorrq_u8(v, vandq_u8(vshlq_u8(vld1q_u8(qh + 32 * (4 * k + c)), shift), vdupq_n_u8(0x10)));
            w[c] = vreinterpretq_s8_u8(v);
        }
        for (int t = 0; t < T; ++t) sub[t] = dot4(sub[t], w, vld1q_s8(x[t] + 16 * k));
    }
}

// The bytes of rows 4h..4h+3 (one per row, at p + 4h) as i32. The load is 8 bytes wide; the
// other 4 are the next scale or min bytes of the same group block, unused.
inline int32x4_t row_bytes_i32(const uint8_t* p, int h) {
    return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vld1_u8(p + 4 * h)))));
}

inline float32x4_t f16x4(const uint8_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
}

// T tokens (<= 4); acc[t][h]: rows 4h..4h+3 of token t.
template <int T, bool Q5>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr size_t block_bytes = Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes;
    float32x4_t acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        // Mins: pairs lane s = bsums[2s] + bsums[2s + 1], the sum of sub-block s's activations.
        int16x8_t mn[8];
        for (int s = 0; s < 8; ++s) mn[s] = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(g + k_q4_k_mins_at + 8 * s)));
        const float32x4_t dmin_lo = f16x4(g + 16), dmin_hi = f16x4(g + 24);
        for (int t = 0; t < T; ++t) {
            const int16x8_t pairs = vpaddq_s16(vld1q_s16(a[t][b].bsums), vld1q_s16(a[t][b].bsums + 8));
            const int32x4x2_t m = mins_dot(mn, pairs, std::make_integer_sequence<int, 8>{});
            acc[t][0] = vfmsq_f32(acc[t][0], vcvtq_f32_s32(m.val[0]), vmulq_n_f32(dmin_lo, a[t][b].d));
            acc[t][1] = vfmsq_f32(acc[t][1], vcvtq_f32_s32(m.val[1]), vmulq_n_f32(dmin_hi, a[t][b].d));
        }
        for (int h = 0; h < 2; ++h) {
            int32x4_t si[T];
            for (int t = 0; t < T; ++t) si[t] = vdupq_n_s32(0);
            for (int j = 0; j < 4; ++j) {
                const uint8_t* q = g + k_q4_k_q_at + 256 * j + 16 * h;
                const uint8_t* qh = g + k_q5_k_qh_at + 16 * h;  // read only for Q5_K
                const int8_t* x[T];
                int32x4_t sub[T];
                // Sub-block 2j: low nibbles, activations 64j .. 64j + 31.
                for (int t = 0; t < T; ++t) {
                    x[t] = a[t][b].qs + 64 * j;
                    sub[t] = vdupq_n_s32(0);
                }
                sub_block_dots<0, T, Q5>(q, x, sub, qh, vdupq_n_s8(int8_t(4 - 2 * j)));
                const int32x4_t sc_lo = row_bytes_i32(g + k_q4_k_scales_at + 8 * (2 * j), h);
                for (int t = 0; t < T; ++t) {
                    si[t] = vmlaq_s32(si[t], sub[t], sc_lo);
                    // Sub-block 2j + 1: high nibbles, activations 64j + 32 .. 64j + 63.
                    x[t] += 32;
                    sub[t] = vdupq_n_s32(0);
                }
                sub_block_dots<1, T, Q5>(q, x, sub, qh, vdupq_n_s8(int8_t(3 - 2 * j)));
                const int32x4_t sc_hi = row_bytes_i32(g + k_q4_k_scales_at + 8 * (2 * j + 1), h);
                for (int t = 0; t < T; ++t) si[t] = vmlaq_s32(si[t], sub[t], sc_hi);
            }
            const float32x4_t d = f16x4(g + 8 * h);
            for (int t = 0; t < T; ++t) acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(si[t]), vmulq_n_f32(d, a[t][b].d));
        }
    }
    for (int t = 0; t < T; ++t) {
        vst1q_f32(y + size_t(t) * y_stride, acc[t][0]);
        vst1q_f32(y + size_t(t) * y_stride + 4, acc[t][1]);
    }
}

}  // namespace

namespace {
template <bool Q5>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<4, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile<decltype(width)::value, Q5>(g, a, nb, yt, y_stride);
    });
}
}  // namespace

void packed_q4_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
