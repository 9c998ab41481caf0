// NEON + dotprod op table for aarch64 (Jetson Orin's Cortex-A78AE and other ARMv8.2-A cores):
// element-wise ops, softmax and SwiGLU in f32, the mul_mat dots of mul_mat_neon.cpp and the packed
// Q4_0 gemm. Reached only when the kernel reports dotprod (and fp16) at run time. Activation
// quantizers, RoPE and attention stay with the generic table / reference.
#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/packed_neon.h"

namespace edgellm::kernels::cpu {
namespace neon_detail {
mul_mat_kernel mul_mat_for(ggml_type t);
float dot_f32(const float* a, const float* b, int64_t n);
}  // namespace neon_detail

namespace {
using neon_detail::dot_f32;

// exp(x) for 4 floats, the same scheme as the AVX2 table: x = k*ln2 + r with |r| <= ln2/2,
// degree-6 Taylor polynomial for e^r (relative error ~2e-7), 2^k built in the exponent bits.
// Inputs are clamped to [-87, 88] so 2^k stays a normal float.
inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0f)), vdupq_n_f32(88.0f));
    const float32x4_t k = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, k, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.0f / 720.0f);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) {
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * n;
        float* yt = y + t * n;
        const float inv = 1.0f / std::sqrt(dot_f32(xt, xt, n) / float(n) + eps);
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) vst1q_f32(yt + i, vmulq_f32(vmulq_n_f32(vld1q_f32(xt + i), inv), vld1q_f32(weight + i)));
        for (; i < n; ++i) yt[i] = xt[i] * inv * weight[i];
    }
}

void softmax(float* x, int64_t n) {
    if (n <= 0) return;
    float32x4_t vmax = vdupq_n_f32(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
    float max_v = vmaxvq_f32(vmax);
    for (; i < n; ++i) max_v = std::max(max_v, x[i]);
    const float32x4_t vm = vdupq_n_f32(max_v);
    float32x4_t vsum = vdupq_n_f32(0.0f);
    for (i = 0; i + 4 <= n; i += 4) {
        const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max_v);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; ++i) x[i] /= sum;
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t silu = vdivq_f32(g, vaddq_f32(one, exp4(vnegq_f32(g))));
        vst1q_f32(y + i, vmulq_f32(silu, vld1q_f32(up + i)));
    }
    for (; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add(float* y, const float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
    for (; i < n; ++i) y[i] += x[i];
}

packed_gemm_fn packed_gemm_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0: return packed_q4_0_gemm_neon;
        default: return nullptr;
    }
}

}  // namespace

const isa_ops* neon_ops() {
    static const isa_ops* ops = []() -> const isa_ops* {
        // The *_neon.cpp files are built with -march=armv8.2-a+fp16+dotprod: both must be present.
        const unsigned long hw = getauxval(AT_HWCAP);
        if (!(hw & HWCAP_ASIMDDP) || !(hw & HWCAP_ASIMDHP)) return nullptr;
        static isa_ops o;
        o.id = impl::neon;
        o.mul_mat_for = neon_detail::mul_mat_for;
        o.packed_gemm_for = packed_gemm_for;
        o.dot_f32 = dot_f32;
        o.rms_norm = rms_norm;
        o.softmax = softmax;
        o.swiglu = swiglu;
        o.add = add;
        return &o;
    }();
    return ops;
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
