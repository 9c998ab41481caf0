// Portable op table: scalar activation quantizers (the definition every ISA's quantizer must match
// bit for bit, so all of them see identical activations), float loops, and F32/F16 dot products. Used where no SIMD table
// applies, and as the fallback for members an ISA table leaves null.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"

namespace edgellm::kernels::cpu {
namespace {

// Symmetric 8-bit quantization of blocks of 32: d = max|x| / 127, q = round(x / d).
void quantize_q8_32(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<act_q8_32*>(dst);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; ++i) {
            const int q = static_cast<int>(std::nearbyint(xb[i] * id));
            out[b].qs[i] = static_cast<int8_t>(q);
            sum += q;
        }
        out[b].d = d;
        out[b].sum = sum;
    }
}

// The same for super-blocks of 256 in ggml's q8_k layout (f32 scale + sums of 16-groups).
void quantize_q8_k(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<q8_k_block*>(dst);
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const float* xb = x + b * QK_K;
        float amax = 0.0f;
        for (int i = 0; i < QK_K; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int g = 0; g < QK_K / 16; ++g) {
            int sum = 0;
            for (int i = g * 16; i < g * 16 + 16; ++i) {
                const int q = static_cast<int>(std::nearbyint(xb[i] * id));
                out[b].qs[i] = static_cast<int8_t>(q);
                sum += q;
            }
            out[b].bsums[g] = static_cast<int16_t>(sum);
        }
        out[b].d = d;
    }
}

float dot_f32(const float* a, const float* b, int64_t n) {
    // Eight partial sums: the same association the SIMD versions use, and it vectorises.
    float acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (; i < n; ++i) s += a[i] * b[i];
    for (float v : acc) s += v;
    return s;
}

float dot_f32_row(const void* w, const void* x, int64_t n) {
    return dot_f32(static_cast<const float*>(w), static_cast<const float*>(x), n);
}

float dot_f16_row(const void* w, const void* x, int64_t n) {
    const auto* wh = static_cast<const fp16_bits*>(w);
    const auto* xf = static_cast<const float*>(x);
    float acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += fp16_to_fp32(wh[i + j]) * xf[i + j];
    float s = 0.0f;
    for (; i < n; ++i) s += fp16_to_fp32(wh[i]) * xf[i];
    for (float v : acc) s += v;
    return s;
}

mul_mat_kernel generic_mul_mat_for(ggml_type t) {
    switch (t) {
        case ggml_type::f32: return {act_format::f32, dot_f32_row};
        case ggml_type::f16: return {act_format::f32, dot_f16_row};
        default: return {};
    }
}

void rms_norm_f32(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) {
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * n;
        float* yt = y + t * n;
        const float inv = 1.0f / std::sqrt(dot_f32(xt, xt, n) / static_cast<float>(n) + eps);
        for (int64_t i = 0; i < n; ++i) yt[i] = xt[i] * inv * weight[i];
    }
}

void add_f32(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// GELU (tanh form) times up, as g * sigmoid(2z): 0.5 (1 + tanh z) = 1 / (1 + e^(-2z)) has no
// cancellation for negative gates (1 + tanh z would lose every digit there). z is clamped so e^(-2z)
// stays finite.
void geglu_f32(const float* gate, const float* up, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        float z = 0.7978845608f * g * (1.0f + 0.044715f * g * g);
        z = std::min(std::max(z, -40.0f), 40.0f);
        y[i] = g / (1.0f + std::exp(-2.0f * z)) * up[i];
    }
}

void softcap_f32(float* x, int64_t n, float cap) {
    const float inv = 1.0f / cap;
    for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

}  // namespace

const isa_ops& generic_ops() {
    static const isa_ops ops = [] {
        isa_ops o;
        o.id = impl::generic;
        o.mul_mat_for = generic_mul_mat_for;
        o.quantize_q8_32 = quantize_q8_32;
        o.quantize_q8_k = quantize_q8_k;
        o.dot_f32 = dot_f32;
        o.rms_norm = rms_norm_f32;
        o.add = add_f32;
        o.geglu = geglu_f32;
        o.softcap = softcap_f32;
        o.flash_attention = flash_attention_generic;
        // softmax, swiglu and attention use the reference (exact, double-accumulating).
        return o;
    }();
    return ops;
}

#if !defined(__x86_64__) && !defined(_M_X64)
const isa_ops* avx2_ops() { return nullptr; }
const isa_ops* avx512_ops() { return nullptr; }
#endif
#if !defined(__aarch64__)
const isa_ops* neon_ops() { return nullptr; }
#endif

}  // namespace edgellm::kernels::cpu
