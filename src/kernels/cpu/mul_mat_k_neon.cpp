// NEON + dotprod dots for the low-bit K-quants Q2_K and Q3_K against q8_k activations, as tiles of
// T = 1..4 tokens (the weights of a block are unpacked once for all of them; T = 1 is the decode
// dot). Same math as the AVX2 tiles: integer sums per 16-element group times the group's scale.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/cpu.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu::neon_detail {
namespace {

template <int T>
inline void act_rows(const void* av, size_t a_stride, const q8_k_block** a) {
    for (int t = 0; t < T; ++t)
        a[t] = reinterpret_cast<const q8_k_block*>(static_cast<const uint8_t*>(av) + size_t(t) * a_stride);
}

// The 16-element group dots of two weight vectors (groups g, g+1) with a token's 32 activations
// at y, times the groups' scales, added to sumi.
inline int32x4_t group_pair(int32x4_t sumi, int8x16_t w0, int8x16_t w1, const int8_t* y, int s0, int s1) {
    const int32x4_t z = vdupq_n_s32(0);
    sumi = vmlaq_n_s32(sumi, vdotq_s32(z, w0, vld1q_s8(y)), s0);
    return vmlaq_n_s32(sumi, vdotq_s32(z, w1, vld1q_s8(y + 16)), s1);
}

// Q2_K: x = d * (sc & 15) * q - dmin * (sc >> 4), 16 groups of 16, q = 2 bits. Pair j of half h
// holds bits 2j..2j+1 of qs[32h .. 32h+31], groups 8h+2j and 8h+2j+1.
template <int T>
void dot_q2_k_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q2_k_block*>(wv);
    const q8_k_block* a[T];
    act_rows<T>(av, a_stride, a);
    const uint8x16_t m2 = vdupq_n_u8(0x03);
    float32x4_t acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) acc[t] = vdupq_n_f32(0.0f), corr[t] = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const uint8_t* sc = w[b].scales;
        int32x4_t sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * h), q1 = vld1q_u8(w[b].qs + 32 * h + 16);
            for (int j = 0; j < 4; ++j) {
                const int8x16_t v0 = vreinterpretq_s8_u8(vandq_u8(q0, m2)), v1 = vreinterpretq_s8_u8(vandq_u8(q1, m2));
                q0 = vshrq_n_u8(q0, 2);
                q1 = vshrq_n_u8(q1, 2);
                const int s0 = sc[8 * h + 2 * j] & 0xF, s1 = sc[8 * h + 2 * j + 1] & 0xF;
                for (int t = 0; t < T; ++t) sumi[t] = group_pair(sumi[t], v0, v1, a[t][b].qs + 128 * h + 32 * j, s0, s1);
            }
        }
        const float d = fp16_to_fp32(w[b].d), dmin = fp16_to_fp32(w[b].dmin);
        for (int t = 0; t < T; ++t) {
            int mins = 0;
            for (int g = 0; g < 16; ++g) mins += (sc[g] >> 4) * a[t][b].bsums[g];
            acc[t] = vfmaq_n_f32(acc[t], vcvtq_f32_s32(sumi[t]), a[t][b].d * d);
            corr[t] += a[t][b].d * dmin * float(mins);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = vaddvq_f32(acc[t]) - corr[t];
}

// Q3_K: x = d * sc * (q2 + 4*h - 4) with sc the unpacked signed 6-bit scale: q2 as in Q2_K, h =
// bit (4*half + j) of hmask[0..31]. The weights go into the dot as signed values in -4..3.
template <int T>
void dot_q3_k_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q3_k_block*>(wv);
    const q8_k_block* a[T];
    act_rows<T>(av, a_stride, a);
    const uint8x16_t m2 = vdupq_n_u8(0x03), four = vdupq_n_u8(4);
    float32x4_t acc[T];
    for (int t = 0; t < T; ++t) acc[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < n / QK_K; ++b) {
        int8_t sc[QK_K / 16];
        q3_k_scales(w[b].scales, sc);
        const uint8x16_t hm0 = vld1q_u8(w[b].hmask), hm1 = vld1q_u8(w[b].hmask + 16);
        int32x4_t sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * h), q1 = vld1q_u8(w[b].qs + 32 * h + 16);
            for (int j = 0; j < 4; ++j) {
                const uint8x16_t bit = vdupq_n_u8(uint8_t(1u << (4 * h + j)));
                // q2 - 4 where the high bit is clear: subtract (4 AND NOT set).
                const int8x16_t v0 = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(q0, m2), vbicq_u8(four, vtstq_u8(hm0, bit))));
                const int8x16_t v1 = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(q1, m2), vbicq_u8(four, vtstq_u8(hm1, bit))));
                q0 = vshrq_n_u8(q0, 2);
                q1 = vshrq_n_u8(q1, 2);
                const int s0 = sc[8 * h + 2 * j], s1 = sc[8 * h + 2 * j + 1];
                for (int t = 0; t < T; ++t) sumi[t] = group_pair(sumi[t], v0, v1, a[t][b].qs + 128 * h + 32 * j, s0, s1);
            }
        }
        const float d = fp16_to_fp32(w[b].d);
        for (int t = 0; t < T; ++t) acc[t] = vfmaq_n_f32(acc[t], vcvtq_f32_s32(sumi[t]), a[t][b].d * d);
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = vaddvq_f32(acc[t]);
}

template <void (*F)(const void*, const void*, size_t, int64_t, float*, size_t)>
float single(const void* w, const void* a, int64_t n) {
    float y;
    F(w, a, 0, n, &y, 0);
    return y;
}

}  // namespace

// Q2_K / Q3_K kernels with their 2-4 token tiles; empty for other types.
mul_mat_kernel low_bit_k_kernel(ggml_type t) {
    switch (t) {
        case ggml_type::q2_k:
            return {act_format::q8_k, single<dot_q2_k_n<1>>, {nullptr, dot_q2_k_n<2>, dot_q2_k_n<3>, dot_q2_k_n<4>}};
        case ggml_type::q3_k:
            return {act_format::q8_k, single<dot_q3_k_n<1>>, {nullptr, dot_q3_k_n<2>, dot_q3_k_n<3>, dot_q3_k_n<4>}};
        default: return {};
    }
}

}  // namespace edgellm::kernels::cpu::neon_detail
#endif  // __aarch64__
