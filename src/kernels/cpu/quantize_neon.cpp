// NEON activation quantizers, bit-identical to generic.cpp's scalar ones (ops_test checks it):
// the same f32 max|x|, d = amax / 127 and id = 1 / d computed in scalar, one IEEE multiply x * id
// per element and round-to-nearest-even (vcvtnq_s32_f32 = nearbyint in the default mode).
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu::neon_detail {
namespace {

// max|x| over n (a multiple of 16) floats.
inline float abs_max(const float* x, int n) {
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int i = 0; i < n; i += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + i)));
    return vmaxvq_f32(m);
}

// Quantizes 16 floats with inverse scale id into q; returns the sum of the 16 values.
inline int32_t quantize16(const float* x, float id, int8_t* q) {
    int32x4_t v[4];
    for (int k = 0; k < 4; ++k) v[k] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4 * k), id));
    const int16x8_t h0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
    const int16x8_t h1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
    vst1q_s8(q, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
    return vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3])));
}

}  // namespace

void quantize_q8_32(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<act_q8_32*>(dst);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        const float d = abs_max(xb, 32) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].sum = quantize16(xb, id, out[b].qs) + quantize16(xb + 16, id, out[b].qs + 16);
        out[b].d = d;
    }
}

void quantize_q8_k(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<q8_k_block*>(dst);
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const float* xb = x + b * QK_K;
        const float d = abs_max(xb, QK_K) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int g = 0; g < QK_K / 16; ++g) out[b].bsums[g] = int16_t(quantize16(xb + 16 * g, id, out[b].qs + 16 * g));
        out[b].d = d;
    }
}

}  // namespace edgellm::kernels::cpu::neon_detail
#endif  // __aarch64__
