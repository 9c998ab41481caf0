// NEON + dotprod gemms over Q4_0, Q5_0, Q4_1 and Q5_1 x8 groups (packed_q4_0.cpp,
// packed_q5_0.cpp, packed_q4_1.cpp). In each 32-byte chunk k, bytes 16*h .. 16*h+15 hold rows
// 4h..4h+3, 4 bytes per row, so one sdot by lane k of the activation vector (vdotq_laneq_s32)
// adds 4 products into each of 4 rows' i32 lanes. The -8 (Q5_0: -16) offset is folded in by
// seeding those lanes with -8 (-16) * sum(activations) of the block; Q4_1 / Q5_1 have no offset
// and add their min term m * da * sum(activations) in f32 (as the per-row dots of
// mul_mat_neon.cpp and the x86 gemms do). Q5_0 / Q5_1 OR each nibble with its fifth bit (bit
// 2k / 2k + 1 of the block's qh vector, whose halves line up with the chunk's), moved to bit 4 by
// a per-byte shift; values 0..31 stay within the signed bytes sdot takes.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

// Bit P of every byte moved to bit 4 (0x10 or 0).
template <int P>
inline uint8x16_t hbit4(uint8x16_t h) {
    const uint8x16_t m = vdupq_n_u8(0x10);
    if constexpr (P < 4) {
        return vandq_u8(vshlq_n_u8(h, 4 - P), m);
    } else if constexpr (P == 4) {
        return vandq_u8(h, m);
    } else {
        return vandq_u8(vshrq_n_u8(h, P - 4), m);
    }
}

// The four layouts sharing this code: Q4_0 x8 (144-byte blocks, q - 8), Q5_0 x8 (176 bytes,
// fifth bits from a qh vector after the nibbles, q - 16), Q4_1 x8 (160 bytes, d*q + m: f16 mins
// after the scales), Q5_1 x8 (192 bytes: Q4_1's scales, mins and nibbles, then Q5_0's qh vector).
enum class kind { q4_0, q5_0, q4_1, q5_1 };

template <kind Kd>
struct shape {
    static constexpr bool q5 = Kd == kind::q5_0 || Kd == kind::q5_1;
    static constexpr bool min = Kd == kind::q4_1 || Kd == kind::q5_1;
    static constexpr size_t qs_at = min ? 32 : 16, qh_at = qs_at + 128;
    static constexpr size_t block_bytes = qh_at + (q5 ? 32 : 0);
    static constexpr int offset = min ? 0 : q5 ? -16 : -8;
};

// The lane index of vdotq_laneq_s32 must be a constant: one unrolled step per chunk K.
template <int K, int T, kind Kd>
inline void chunk_step(const uint8_t* g, const int8x16_t* a_lo, const int8x16_t* a_hi, int32x4_t (*s)[2]) {
    using S = shape<Kd>;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const uint8x16_t c0 = vld1q_u8(g + S::qs_at + 32 * K), c1 = vld1q_u8(g + S::qs_at + 32 * K + 16);
    uint8x16_t ul0 = vandq_u8(c0, m4), ul1 = vandq_u8(c1, m4), uh0 = vshrq_n_u8(c0, 4), uh1 = vshrq_n_u8(c1, 4);
    if constexpr (S::q5) {
        const uint8x16_t h0 = vld1q_u8(g + S::qh_at), h1 = vld1q_u8(g + S::qh_at + 16);
        ul0 = vorrq_u8(ul0, hbit4<2 * K>(h0));
        ul1 = vorrq_u8(ul1, hbit4<2 * K>(h1));
        uh0 = vorrq_u8(uh0, hbit4<2 * K + 1>(h0));
        uh1 = vorrq_u8(uh1, hbit4<2 * K + 1>(h1));
    }
    const int8x16_t lo0 = vreinterpretq_s8_u8(ul0), lo1 = vreinterpretq_s8_u8(ul1);
    const int8x16_t hi0 = vreinterpretq_s8_u8(uh0), hi1 = vreinterpretq_s8_u8(uh1);
    for (int t = 0; t < T; ++t) {
        s[t][0] = vdotq_laneq_s32(s[t][0], lo0, a_lo[t], K);
        s[t][1] = vdotq_laneq_s32(s[t][1], lo1, a_lo[t], K);
        s[t][0] = vdotq_laneq_s32(s[t][0], hi0, a_hi[t], K);
        s[t][1] = vdotq_laneq_s32(s[t][1], hi1, a_hi[t], K);
    }
}

// T tokens (<= 4: 4 x (2 i32 + 2 f32 + 2 activation) vectors stay within the 32 registers;
// Q4_1 / Q5_1 add 2 min vectors for the whole tile).
template <int T, kind Kd>
void gemm_tile(const uint8_t* g, const act_q8_32* const* a, int64_t nb, float* y, size_t y_stride) {
    using S = shape<Kd>;
    constexpr int offset = S::offset;
    float32x4_t acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b, g += S::block_bytes) {
        const auto* h16 = reinterpret_cast<const uint16_t*>(g);
        const float32x4_t d_lo = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h16)));
        const float32x4_t d_hi = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h16 + 4)));
        [[maybe_unused]] float32x4_t m_lo, m_hi;
        if constexpr (S::min) {
            m_lo = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h16 + 8)));
            m_hi = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h16 + 12)));
        }
        int8x16_t a_lo[T], a_hi[T];
        int32x4_t s[T][2];
        for (int t = 0; t < T; ++t) {
            a_lo[t] = vld1q_s8(a[t][b].qs);
            a_hi[t] = vld1q_s8(a[t][b].qs + 16);
            s[t][0] = s[t][1] = vdupq_n_s32(offset * a[t][b].sum);
        }
        chunk_step<0, T, Kd>(g, a_lo, a_hi, s);
        chunk_step<1, T, Kd>(g, a_lo, a_hi, s);
        chunk_step<2, T, Kd>(g, a_lo, a_hi, s);
        chunk_step<3, T, Kd>(g, a_lo, a_hi, s);
        for (int t = 0; t < T; ++t) {
            const float da = a[t][b].d;
            acc[t][0] = vfmaq_f32(acc[t][0], vcvtq_f32_s32(s[t][0]), vmulq_n_f32(d_lo, da));
            acc[t][1] = vfmaq_f32(acc[t][1], vcvtq_f32_s32(s[t][1]), vmulq_n_f32(d_hi, da));
            if constexpr (S::min) {
                const float ms = da * float(a[t][b].sum);
                acc[t][0] = vfmaq_n_f32(acc[t][0], m_lo, ms);
                acc[t][1] = vfmaq_n_f32(acc[t][1], m_hi, ms);
            }
        }
    }
    for (int t = 0; t < T; ++t) {
        vst1q_f32(y + size_t(t) * y_stride, acc[t][0]);
        vst1q_f32(y + size_t(t) * y_stride + 4, acc[t][1]);
    }
}

}  // namespace

namespace {
template <kind Kd>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / 32;
    for_each_token_tile<4, act_q8_32>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const act_q8_32* const* a, float* yt) {
        gemm_tile<decltype(width)::value, Kd>(g, a, nb, yt, y_stride);
    });
}
}  // namespace

void packed_q4_0_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q4_0>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_0_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q5_0>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q4_1_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q4_1>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_1_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q5_1>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
