// NEON + dotprod gemms over Q3_K and Q2_K x8 groups (packed_q3_k.cpp, packed_q2_k.cpp). In each
// 32-byte chunk c of a half h, bytes 16R .. 16R + 15 hold rows 4R..4R+3, 4 bytes per row; bits
// 2J, 2J + 1 of those bytes are elements 128h + 32J + 4c .. +3 (chunks 4i..4i+3: sub-block
// s = 8h + 2J + i). So per sub-block and row quad R, the 4 chunks' fields J are 4 vectors of 4
// consecutive weights of 4 rows; 4 sdots by lanes 0..3 of the sub-block's 16 activations
// (vdotq_laneq_s32) leave the 4 rows' sub-block dots in one i32 vector, and one multiply-add by
// the rows' scales (unpacked to i32 once per super-block) accumulates them.
// Q2_K: a field is one shift and/or one mask (immediate shifts: J is a template constant); the
// mins (sum over sub-blocks of min * bsum, times dmin) are taken off the float accumulators first,
// as in the Q4_K NEON gemm. Q3_K: the signed weight q2 - 4 * (1 - hbit) comes out of 4
// instructions (the field and the inverted hmask bit H = 4h + J shifted to bits 6..5 and 7, one
// shift-right-and-insert, an arithmetic shift right by 5), so no -4 offset term is needed; the
// hmask bytes are loaded and inverted once for both halves.
// Decode is bound by this unpacking (the sdots are shared by the 4 rows), hence the care.
// i32 bounds: a Q3_K sub-block dot is at most 16 * 4 * 128 = 8192, times |scale| <= 32 and 16
// sub-blocks: 2^22; Q2_K: 16 * 3 * 128 * 15 * 16 and mins 16 * 15 * 2048, below 2^23.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <utility>

#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_q3_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

inline float32x4_t f16x4(const uint8_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
}

// 4 rows' dots of 4 consecutive chunks (w[k]: their weights for 4 rows) with x, chunk k by lane k.
inline int32x4_t dot4(int32x4_t acc, const int8x16_t* w, int8x16_t x) {
    acc = vdotq_laneq_s32(acc, w[0], x, 0);
    acc = vdotq_laneq_s32(acc, w[1], x, 1);
    acc = vdotq_laneq_s32(acc, w[2], x, 2);
    return vdotq_laneq_s32(acc, w[3], x, 3);
}

// The 8 rows' scale bytes of sub-blocks 2p (val[0]) and 2p + 1 (val[1]) from pair p's 16 bytes
// (byte 2r + i: row r, sub-block 2p + i), rows in bytes 0..7.
inline uint8x16x2_t by_sub_block(const uint8_t* pair) {
    const uint8x16_t sp = vld1q_u8(pair);
    return {{vuzp1q_u8(sp, sp), vuzp2q_u8(sp, sp)}};
}

// Bytes 4R..4R+3 of v (rows 4R..4R+3) as i32: unsigned for Q2_K's nibbles, signed for Q3_K.
template <bool Signed>
inline int32x4_t rows_i32(uint8x16_t v, int R) {
    if constexpr (Signed) {
        const int16x8_t w = vmovl_s8(vget_low_s8(vreinterpretq_s8_u8(v)));
        return R ? vmovl_high_s16(w) : vmovl_s16(vget_low_s16(w));
    } else {
        const uint16x8_t w = vmovl_u8(vget_low_u8(v));
        return vreinterpretq_s32_u32(R ? vmovl_high_u16(w) : vmovl_u16(vget_low_u16(w)));
    }
}

// f(std::integral_constant<int, I>{}) for I = 0 .. N-1 (the bit positions must be immediates).
template <typename F, int... I>
inline void static_for(F&& f, std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I>{}), ...);
}

// Q2_K: the 2-bit fields J (bits 2J, 2J + 1) of q, 0..3.
template <int J>
inline int8x16_t q2_weights(uint8x16_t q) {
    if constexpr (J == 0) return vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x03)));
    else if constexpr (J == 3) return vreinterpretq_s8_u8(vshrq_n_u8(q, 6));
    else return vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q, 2 * J), vdupq_n_u8(0x03)));
}

// Q3_K: the signed weights q2 - 4 * (1 - hbit), -4..3, from field J of q and bit H of the
// inverted hmask bytes nh: the three bits (not hbit, q2) are placed at bits 7..5 (shift-right-
// and-insert) and an arithmetic shift right by 5 sign-extends them.
template <int J, int H>
inline int8x16_t q3_weights(uint8x16_t q, uint8x16_t nh) {
    uint8x16_t hi = nh, lo = q;
    if constexpr (H != 7) hi = vshlq_n_u8(nh, 7 - H);
    if constexpr (J != 3) lo = vshlq_n_u8(q, 6 - 2 * J);
    return vshrq_n_s8(vreinterpretq_s8_u8(vsriq_n_u8(hi, lo, 1)), 5);
}

// T tokens (<= 4); acc[t][R]: rows 4R..4R+3 of token t. Loop order per row quad: chunk group i
// (chunks 4i..4i+3, whose hm bytes serve both halves), half h, then the 4 fields J of the loaded
// chunks: sub-block 8h + 2J + i.
template <int T, bool Q2>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr size_t block_bytes = Q2 ? k_q2_k_group_block_bytes : k_q3_k_group_block_bytes;
    constexpr size_t scales_at = Q2 ? k_q2_k_scales_at : k_q3_k_scales_at;
    constexpr size_t q_at = Q2 ? k_q2_k_q_at : k_q3_k_q_at;
    const uint8x16_t m15 = vdupq_n_u8(0x0F);
    float32x4_t acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        // sc[R][s]: the scales of sub-block s of rows 4R..4R+3 as i32.
        int32x4_t sc[2][16];
        for (int p = 0; p < 8; ++p) {
            const uint8x16x2_t sb = by_sub_block(g + scales_at + 16 * p);
            for (int i = 0; i < 2; ++i) {
                const uint8x16_t v = Q2 ? vandq_u8(sb.val[i], m15) : sb.val[i];
                sc[0][2 * p + i] = rows_i32<!Q2>(v, 0);
                sc[1][2 * p + i] = rows_i32<!Q2>(v, 1);
            }
        }
        if constexpr (Q2) {
            // Mins: sum over sub-blocks s of min[s] (per row) * bsums[s] (per token).
            int32x4_t ms[T][2];
            for (int t = 0; t < T; ++t) ms[t][0] = ms[t][1] = vdupq_n_s32(0);
            for (int p = 0; p < 8; ++p) {
                const uint8x16x2_t sb = by_sub_block(g + scales_at + 16 * p);
                for (int i = 0; i < 2; ++i) {
                    const int16x8_t mn = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(vshrq_n_u8(sb.val[i], 4))));
                    for (int t = 0; t < T; ++t) {
                        const int16_t bs = a[t][b].bsums[2 * p + i];
                        ms[t][0] = vmlal_n_s16(ms[t][0], vget_low_s16(mn), bs);
                        ms[t][1] = vmlal_high_n_s16(ms[t][1], mn, bs);
                    }
                }
            }
            const float32x4_t dmin_lo = f16x4(g + 16), dmin_hi = f16x4(g + 24);
            for (int t = 0; t < T; ++t) {
                acc[t][0] = vfmsq_f32(acc[t][0], vcvtq_f32_s32(ms[t][0]), vmulq_n_f32(dmin_lo, a[t][b].d));
                acc[t][1] = vfmsq_f32(acc[t][1], vcvtq_f32_s32(ms[t][1]), vmulq_n_f32(dmin_hi, a[t][b].d));
            }
        }
        for (int R = 0; R < 2; ++R) {
            int32x4_t si[T];
            for (int t = 0; t < T; ++t) si[t] = vdupq_n_s32(0);
            for (int i = 0; i < 2; ++i) {
                uint8x16_t nh[4];
                if constexpr (!Q2)
                    for (int k = 0; k < 4; ++k) nh[k] = vmvnq_u8(vld1q_u8(g + k_q3_k_h_at + 32 * (4 * i + k) + 16 * R));
                static_for(
                    [&](auto hc) {
                        constexpr int h = decltype(hc)::value;
                        uint8x16_t q[4];
                        for (int k = 0; k < 4; ++k) q[k] = vld1q_u8(g + q_at + 256 * h + 32 * (4 * i + k) + 16 * R);
                        static_for(
                            [&](auto jc) {
                                constexpr int J = decltype(jc)::value;
                                const int s = 8 * h + 2 * J + i;
                                int8x16_t w[4];
                                for (int k = 0; k < 4; ++k) {
                                    if constexpr (Q2) w[k] = q2_weights<J>(q[k]);
                                    else w[k] = q3_weights<J, 4 * h + J>(q[k], nh[k]);
                                }
                                for (int t = 0; t < T; ++t)
                                    si[t] = vmlaq_s32(si[t], dot4(vdupq_n_s32(0), w, vld1q_s8(a[t][b].qs + 16 * s)), sc[R][s]);
                            },
                            std::make_integer_sequence<int, 4>{});
                    },
                    std::make_integer_sequence<int, 2>{});
            }
            const float32x4_t d = f16x4(g + 8 * R);
            for (int t = 0; t < T; ++t) acc[t][R] = vfmaq_f32(acc[t][R], vcvtq_f32_s32(si[t]), vmulq_n_f32(d, a[t][b].d));
        }
    }
    for (int t = 0; t < T; ++t) {
        vst1q_f32(y + size_t(t) * y_stride, acc[t][0]);
        vst1q_f32(y + size_t(t) * y_stride + 4, acc[t][1]);
    }
}

template <bool Q2>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<4, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile<decltype(width)::value, Q2>(g, a, nb, yt, y_stride);
    });
}

}  // namespace

void packed_q3_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q2_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
