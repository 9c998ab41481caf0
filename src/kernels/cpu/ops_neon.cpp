// NEON + dotprod op table for aarch64 (Jetson Orin's Cortex-A78AE and other ARMv8.2-A cores):
// element-wise ops, softmax, SwiGLU and attention in f32, the mul_mat dots of mul_mat_neon.cpp,
// the activation quantizers of quantize_neon.cpp and the packed gemms (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K to Q6_K, F16, BF16). Reached only when the kernel reports dotprod (and fp16) at run
// time. RoPE stays with the shared driver.
#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/packed_neon.h"
#include "quant/fp16.h"

namespace edgellm::kernels::cpu {
namespace neon_detail {
mul_mat_kernel mul_mat_for(ggml_type t);
float dot_f32(const float* a, const float* b, int64_t n);
void quantize_q8_32(const float* x, void* dst, int64_t n);
void quantize_q8_k(const float* x, void* dst, int64_t n);
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

inline float32x4_t load4(const void* base, bool is_f16, int64_t i) {
    if (is_f16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(base) + i)));
    return vld1q_f32(static_cast<const float*>(base) + i);
}

inline float load1(const void* base, bool is_f16, int64_t i) {
    return is_f16 ? fp16_to_fp32(static_cast<const fp16_bits*>(base)[i]) : static_cast<const float*>(base)[i];
}

// Per query head: scores = scale * q.k_j, softmax, out = sum_j p_j v_j, 4 lanes at a time with
// scalar head_dim tails (the same structure as the AVX2 table).
void attention(const float* q, const kv_view& kv, int64_t n_kv, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, float scale, float* out, float* scratch) {
    const ggml_type kv_type = kv.type;
    if (kv_type != ggml_type::f32 && kv_type != ggml_type::f16)
        throw error("attention: KV cache type must be F32 or F16");
    if (n_head_kv <= 0 || n_head % n_head_kv != 0)
        throw error("attention: n_head must be a multiple of n_head_kv");
    const bool f16 = kv_type == ggml_type::f16;
    const int64_t group = n_head / n_head_kv;
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t base = (h / group) * head_dim;
        const float* qh = q + h * head_dim;
        for (int64_t j = 0; j < n_kv; ++j) {
            const void* kr = kv.k_row(j);
            float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
            int64_t d = 0;
            for (; d + 8 <= head_dim; d += 8) {
                acc0 = vfmaq_f32(acc0, vld1q_f32(qh + d), load4(kr, f16, base + d));
                acc1 = vfmaq_f32(acc1, vld1q_f32(qh + d + 4), load4(kr, f16, base + d + 4));
            }
            for (; d + 4 <= head_dim; d += 4) acc0 = vfmaq_f32(acc0, vld1q_f32(qh + d), load4(kr, f16, base + d));
            float s = vaddvq_f32(vaddq_f32(acc0, acc1));
            for (; d < head_dim; ++d) s += qh[d] * load1(kr, f16, base + d);
            scratch[j] = s * scale;
        }
        softmax(scratch, n_kv);
        float* oh = out + h * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) oh[d] = 0.0f;
        for (int64_t j = 0; j < n_kv; ++j) {
            const void* vr = kv.v_row(j);
            const float p = scratch[j];
            int64_t d = 0;
            for (; d + 4 <= head_dim; d += 4) vst1q_f32(oh + d, vfmaq_n_f32(vld1q_f32(oh + d), load4(vr, f16, base + d), p));
            for (; d < head_dim; ++d) oh[d] += p * load1(vr, f16, base + d);
        }
    }
}

packed_gemm_fn packed_gemm_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0: return packed_q4_0_gemm_neon;
        case ggml_type::q8_0: return packed_q8_0_gemm_neon;
        case ggml_type::q4_k: return packed_q4_k_gemm_neon;
        case ggml_type::q6_k: return packed_q6_k_gemm_neon;
        case ggml_type::q5_0: return packed_q5_0_gemm_neon;
        case ggml_type::q4_1: return packed_q4_1_gemm_neon;
        case ggml_type::q5_1: return packed_q5_1_gemm_neon;
        case ggml_type::q5_k: return packed_q5_k_gemm_neon;
        case ggml_type::q3_k: return packed_q3_k_gemm_neon;
        case ggml_type::q2_k: return packed_q2_k_gemm_neon;
        case ggml_type::f16: return packed_f16_gemm_neon;
        case ggml_type::bf16: return packed_bf16_gemm_neon;
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
        o.quantize_q8_32 = neon_detail::quantize_q8_32;
        o.quantize_q8_k = neon_detail::quantize_q8_k;
        o.dot_f32 = dot_f32;
        o.rms_norm = rms_norm;
        o.softmax = softmax;
        o.swiglu = swiglu;
        o.add = add;
        o.attention = attention;
        o.flash_attention = flash_attention_neon;
        return &o;
    }();
    return ops;
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
