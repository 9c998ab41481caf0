// NEON + dotprod dot products of one weight row with one prepared activation row (aarch64, e.g.
// Jetson Orin's Cortex-A78AE): weights are unpacked to signed bytes in registers and multiplied
// with the activations by sdot (vdotq_s32: 4 i8 x i8 products summed into each i32 lane).
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/cpu.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu::neon_detail {
namespace {

inline float f16(fp16_bits h) { return fp16_to_fp32(h); }

// Q4_0: x = d * (q - 8); the nibbles are re-centred to [-8, 7] before the dot, so the integer
// dot product is exact without the activation sum.
float dot_q4_0(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q4_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t s8 = vdupq_n_s8(8);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    const int64_t nb = n / 32;
    auto block = [&](int64_t b) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), s8);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), s8);
        int32x4_t p = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8(a[b].qs));
        p = vdotq_s32(p, hi, vld1q_s8(a[b].qs + 16));
        return p;
    };
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const int32x4_t p0 = block(b), p1 = block(b + 1);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), f16(w[b].d) * a[b].d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(p1), f16(w[b + 1].d) * a[b + 1].d);
    }
    for (; b < nb; ++b) acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(block(b)), f16(w[b].d) * a[b].d);
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// The 5th bit of 16 elements of a Q5 block: bits 16*half .. 16*half+15 of qh, as 0x10 per byte.
inline uint8x16_t q5_high_bits(const uint8_t* qh, int half) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t b = vcombine_u8(vdup_n_u8(qh[2 * half]), vdup_n_u8(qh[2 * half + 1]));
    return vandq_u8(vtstq_u8(b, vld1q_u8(bit)), vdupq_n_u8(0x10));
}

// Q4_1: x = d * q + m; the min meets the activations through their block sum.
float dot_q4_1(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q4_1_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc = vdupq_n_f32(0.0f);
    float corr = 0.0f;
    for (int64_t b = 0; b < n / 32; ++b) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        int32x4_t p = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(q, m4)), vld1q_s8(a[b].qs));
        p = vdotq_s32(p, vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vld1q_s8(a[b].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), f16(w[b].d) * a[b].d);
        corr += f16(w[b].m) * (a[b].d * float(a[b].sum));
    }
    return vaddvq_f32(acc) + corr;
}

// Q5_0: x = d * (q - 16), q = nibble | qh bit << 4.
float dot_q5_0(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q5_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < n / 32; ++b) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const uint8x16_t lo = vorrq_u8(vandq_u8(q, m4), q5_high_bits(w[b].qh, 0));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), q5_high_bits(w[b].qh, 1));
        int32x4_t p = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), vld1q_s8(a[b].qs));
        p = vdotq_s32(p, vreinterpretq_s8_u8(hi), vld1q_s8(a[b].qs + 16));
        p = vsetq_lane_s32(vgetq_lane_s32(p, 0) - 16 * a[b].sum, p, 0);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), f16(w[b].d) * a[b].d);
    }
    return vaddvq_f32(acc);
}

// Q5_1: x = d * q + m, q = nibble | qh bit << 4.
float dot_q5_1(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q5_1_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc = vdupq_n_f32(0.0f);
    float corr = 0.0f;
    for (int64_t b = 0; b < n / 32; ++b) {
        const uint8x16_t q = vld1q_u8(w[b].qs);
        const uint8x16_t lo = vorrq_u8(vandq_u8(q, m4), q5_high_bits(w[b].qh, 0));
        const uint8x16_t hi = vorrq_u8(vshrq_n_u8(q, 4), q5_high_bits(w[b].qh, 1));
        int32x4_t p = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), vld1q_s8(a[b].qs));
        p = vdotq_s32(p, vreinterpretq_s8_u8(hi), vld1q_s8(a[b].qs + 16));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), f16(w[b].d) * a[b].d);
        corr += f16(w[b].m) * (a[b].d * float(a[b].sum));
    }
    return vaddvq_f32(acc) + corr;
}

float dot_q8_0(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q8_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    const int64_t nb = n / 32;
    auto block = [&](int64_t b) {
        int32x4_t p = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w[b].qs), vld1q_s8(a[b].qs));
        return vdotq_s32(p, vld1q_s8(w[b].qs + 16), vld1q_s8(a[b].qs + 16));
    };
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const int32x4_t p0 = block(b), p1 = block(b + 1);
        acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), f16(w[b].d) * a[b].d);
        acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(p1), f16(w[b + 1].d) * a[b + 1].d);
    }
    for (; b < nb; ++b) acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(block(b)), f16(w[b].d) * a[b].d);
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// Q4_K: per super-block x = d*sc[j]*q - dmin*m[j] over 8 sub-blocks of 32; the mins meet the
// activations through the precomputed 16-element sums (bsums). T tokens at once (prefill tiles):
// the weights are unpacked once per block for all of them.
template <int T>
void q4_k_tile(const void* wv, const uint8_t* act, size_t act_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q4_k_block*>(wv);
    const q8_k_block* a[T];
    for (int t = 0; t < T; ++t) a[t] = reinterpret_cast<const q8_k_block*>(act + size_t(t) * act_stride);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float32x4_t acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) {
        acc[t] = vdupq_n_f32(0.0f);
        corr[t] = 0.0f;
    }
    for (int64_t b = 0; b < n / QK_K; ++b) {
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
        int32x4_t sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = vdupq_n_s32(0);
        for (int j = 0; j < 4; ++j) {
            const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * j), q1 = vld1q_u8(w[b].qs + 32 * j + 16);
            const int8x16_t l0 = vreinterpretq_s8_u8(vandq_u8(q0, m4)), l1 = vreinterpretq_s8_u8(vandq_u8(q1, m4));
            const int8x16_t h0 = vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), h1 = vreinterpretq_s8_u8(vshrq_n_u8(q1, 4));
            for (int t = 0; t < T; ++t) {
                const int8_t* y8 = a[t][b].qs + 64 * j;
                const int32x4_t plo = vdotq_s32(vdotq_s32(vdupq_n_s32(0), l0, vld1q_s8(y8)), l1, vld1q_s8(y8 + 16));
                const int32x4_t phi = vdotq_s32(vdotq_s32(vdupq_n_s32(0), h0, vld1q_s8(y8 + 32)), h1, vld1q_s8(y8 + 48));
                sumi[t] = vmlaq_n_s32(vmlaq_n_s32(sumi[t], plo, sc[2 * j]), phi, sc[2 * j + 1]);
            }
        }
        const float d = f16(w[b].d), dmin = f16(w[b].dmin);
        for (int t = 0; t < T; ++t) {
            int mins = 0;
            for (int j = 0; j < 8; ++j) mins += mn[j] * (a[t][b].bsums[2 * j] + a[t][b].bsums[2 * j + 1]);
            acc[t] = vfmaq_n_f32(acc[t], vcvtq_f32_s32(sumi[t]), a[t][b].d * d);
            corr[t] += a[t][b].d * dmin * float(mins);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = vaddvq_f32(acc[t]) - corr[t];
}

float dot_q4_k(const void* wv, const void* av, int64_t n) {
    float y;
    q4_k_tile<1>(wv, static_cast<const uint8_t*>(av), 0, n, &y, 0);
    return y;
}

template <int T>
void dot_q4_k_n(const void* w, const void* act, size_t act_stride, int64_t n, float* y, size_t y_stride) {
    q4_k_tile<T>(w, static_cast<const uint8_t*>(act), act_stride, n, y, y_stride);
}

// Q5_K: Q4_K with a 5th bit per weight from qh: bit 2j of qh[l] for element 64j + l, bit 2j+1
// for element 64j + 32 + l.
float dot_q5_k(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q5_k_block*>(wv);
    const auto* a = static_cast<const q8_k_block*>(av);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), bit = vdupq_n_u8(0x10);
    float32x4_t acc = vdupq_n_f32(0.0f);
    float corr = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
        int mins = 0;
        for (int j = 0; j < 8; ++j) mins += mn[j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        // qh shifted right as j advances, so its bits 0 and 1 are always the ones in use.
        uint8x16_t qh0 = vld1q_u8(w[b].qh), qh1 = vld1q_u8(w[b].qh + 16);
        int32x4_t sumi = vdupq_n_s32(0);
        for (int j = 0; j < 4; ++j) {
            const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * j), q1 = vld1q_u8(w[b].qs + 32 * j + 16);
            const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q0, m4), vandq_u8(vshlq_n_u8(qh0, 4), bit)));
            const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q1, m4), vandq_u8(vshlq_n_u8(qh1, 4), bit)));
            const int8x16_t h0 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vshlq_n_u8(qh0, 3), bit)));
            const int8x16_t h1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vshlq_n_u8(qh1, 3), bit)));
            qh0 = vshrq_n_u8(qh0, 2);
            qh1 = vshrq_n_u8(qh1, 2);
            const int8_t* y8 = a[b].qs + 64 * j;
            const int32x4_t plo = vdotq_s32(vdotq_s32(vdupq_n_s32(0), l0, vld1q_s8(y8)), l1, vld1q_s8(y8 + 16));
            const int32x4_t phi = vdotq_s32(vdotq_s32(vdupq_n_s32(0), h0, vld1q_s8(y8 + 32)), h1, vld1q_s8(y8 + 48));
            sumi = vmlaq_n_s32(vmlaq_n_s32(sumi, plo, sc[2 * j]), phi, sc[2 * j + 1]);
        }
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sumi), a[b].d * f16(w[b].d));
        corr += a[b].d * f16(w[b].dmin) * float(mins);
    }
    return vaddvq_f32(acc) - corr;
}

// Q6_K: x = d * sc[g] * (q - 32), 16 groups of 16, q = 4 bits from ql + 2 bits from qh; the -32
// is applied once per super-block through the activation sums.
float dot_q6_k(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q6_k_block*>(wv);
    const auto* a = static_cast<const q8_k_block*>(av);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m2 = vdupq_n_u8(0x03);
    float32x4_t acc = vdupq_n_f32(0.0f);
    float corr = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const int8_t* sc = w[b].scales;
        int offset = 0;
        for (int g = 0; g < 16; ++g) offset += sc[g] * a[b].bsums[g];
        int32x4_t sumi = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const uint8_t* qh = w[b].qh + 32 * h;
            const int8_t* s = sc + 8 * h;
            const int8_t* y = a[b].qs + 128 * h;
            // Each 16-byte half i (0, 1) of the 32-element rows; q_k covers y[32k .. 32k+32).
            for (int i = 0; i < 2; ++i) {
                const uint8x16_t la = vld1q_u8(ql + 16 * i), lb = vld1q_u8(ql + 32 + 16 * i);
                const uint8x16_t hb = vld1q_u8(qh + 16 * i);
                const uint8x16_t q1 = vorrq_u8(vandq_u8(la, m4), vshlq_n_u8(vandq_u8(hb, m2), 4));
                const uint8x16_t q2 = vorrq_u8(vandq_u8(lb, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m2), 4));
                const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(la, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m2), 4));
                const uint8x16_t q4 = vorrq_u8(vshrq_n_u8(lb, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                const int32x4_t z = vdupq_n_s32(0);
                sumi = vmlaq_n_s32(sumi, vdotq_s32(z, vreinterpretq_s8_u8(q1), vld1q_s8(y + 16 * i)), s[0 + i]);
                sumi = vmlaq_n_s32(sumi, vdotq_s32(z, vreinterpretq_s8_u8(q2), vld1q_s8(y + 32 + 16 * i)), s[2 + i]);
                sumi = vmlaq_n_s32(sumi, vdotq_s32(z, vreinterpretq_s8_u8(q3), vld1q_s8(y + 64 + 16 * i)), s[4 + i]);
                sumi = vmlaq_n_s32(sumi, vdotq_s32(z, vreinterpretq_s8_u8(q4), vld1q_s8(y + 96 + 16 * i)), s[6 + i]);
            }
        }
        const float d = a[b].d * f16(w[b].d);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sumi), d);
        corr += d * float(offset);
    }
    return vaddvq_f32(acc) - 32.0f * corr;
}

float dot_f16(const void* wv, const void* xv, int64_t n) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const auto* x = static_cast<const float*>(xv);
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; ++k) {
            const float32x4_t wf = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + i + 4 * k)));
            acc[k] = vfmaq_f32(acc[k], wf, vld1q_f32(x + i + 4 * k));
        }
    for (; i + 4 <= n; i += 4)
        acc[0] = vfmaq_f32(acc[0], vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + i))), vld1q_f32(x + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; ++i) s += f16(w[i]) * x[i];
    return s;
}

// BF16 is the top half of an f32: widen each value into the high 16 bits.
float dot_bf16(const void* wv, const void* xv, int64_t n) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const auto* x = static_cast<const float*>(xv);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    auto load = [&](int64_t k) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(w + k), 16)); };
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, load(i), vld1q_f32(x + i));
        acc1 = vfmaq_f32(acc1, load(i + 4), vld1q_f32(x + i + 4));
    }
    for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, load(i), vld1q_f32(x + i));
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
    return s;
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f32(acc[k], vld1q_f32(a + i + 4 * k), vld1q_f32(b + i + 4 * k));
    for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

namespace {
float dot_f32_row(const void* w, const void* x, int64_t n) {
    return dot_f32(static_cast<const float*>(w), static_cast<const float*>(x), n);
}
}  // namespace

mul_mat_kernel low_bit_k_kernel(ggml_type t);  // mul_mat_k_neon.cpp

// Types without a NEON dot return an empty kernel: the driver falls back to the generic table.
mul_mat_kernel mul_mat_for(ggml_type t) {
    switch (t) {
        case ggml_type::f32: return {act_format::f32, dot_f32_row};
        case ggml_type::f16: return {act_format::f32, dot_f16};
        case ggml_type::bf16: return {act_format::f32, dot_bf16};
        case ggml_type::q4_0: return {act_format::q8_32, dot_q4_0};
        case ggml_type::q4_1: return {act_format::q8_32, dot_q4_1};
        case ggml_type::q5_0: return {act_format::q8_32, dot_q5_0};
        case ggml_type::q5_1: return {act_format::q8_32, dot_q5_1};
        case ggml_type::q8_0: return {act_format::q8_32, dot_q8_0};
        case ggml_type::q4_k: return {act_format::q8_k, dot_q4_k, {nullptr, dot_q4_k_n<2>, dot_q4_k_n<3>, dot_q4_k_n<4>}};
        case ggml_type::q5_k: return {act_format::q8_k, dot_q5_k};
        case ggml_type::q2_k:
        case ggml_type::q3_k: return low_bit_k_kernel(t);
        case ggml_type::q6_k: return {act_format::q8_k, dot_q6_k};
        default: return {};
    }
}

}  // namespace edgellm::kernels::cpu::neon_detail
#endif  // __aarch64__
