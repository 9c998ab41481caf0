// AVX2 + FMA + F16C op table: element-wise ops, softmax, SwiGLU and attention over an F32/F16 KV
// cache, plus the mul_mat kernels from mul_mat_avx2.cpp. Reached only when the CPU reports all three.
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_f16.h"
#include "kernels/cpu/packed_q3_k.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_q8_0.h"
#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu {
namespace avx2_detail {
mul_mat_kernel mul_mat_for(ggml_type t);
float dot_f32(const float* a, const float* b, int64_t n);
void quantize_q8_32(const float* x, void* dst, int64_t n);
void quantize_q8_k(const float* x, void* dst, int64_t n);
}  // namespace avx2_detail

namespace {
using avx2_detail::dot_f32;

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// exp(x) for 8 floats: x = k*ln2 + r with |r| <= ln2/2, degree-6 Taylor polynomial for e^r
// (relative error ~2e-7), 2^k built in the exponent bits. Inputs are clamped to [-87, 88] so 2^k
// stays a normal float; e^-87 ~ 1.6e-38 is as good as zero for softmax and SiLU.
inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) {
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * n;
        float* yt = y + t * n;
        const float inv = 1.0f / std::sqrt(dot_f32(xt, xt, n) / float(n) + eps);
        const __m256 vinv = _mm256_set1_ps(inv);
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(yt + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xt + i), vinv), _mm256_loadu_ps(weight + i)));
        for (; i < n; ++i) yt[i] = xt[i] * inv * weight[i];
    }
}

void softmax(float* x, int64_t n) {
    if (n <= 0) return;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float max_v = hmax(vmax);
    for (; i < n; ++i) max_v = std::max(max_v, x[i]);
    const __m256 vm = _mm256_set1_ps(max_v);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum(vsum);
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max_v);
        sum += x[i];
    }
    const __m256 vinv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; ++i) x[i] /= sum;
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    int64_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// GELU (tanh form) times up as g * sigmoid(2z), the generic table's formula (see generic.cpp), with
// the 8-lane exp; z is clamped to [-40, 40] as there.
void geglu(const float* gate, const float* up, float* y, int64_t n) {
    int64_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), lo = _mm256_set1_ps(-40.0f), hi = _mm256_set1_ps(40.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), g), g, one);
        __m256 z = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.7978845608f), g), inner);
        z = _mm256_min_ps(_mm256_max_ps(z, lo), hi);
        const __m256 e = exp256(_mm256_mul_ps(_mm256_set1_ps(-2.0f), z));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) {
        const float g = gate[i];
        float z = 0.7978845608f * g * (1.0f + 0.044715f * g * g);
        z = std::min(std::max(z, -40.0f), 40.0f);
        y[i] = g / (1.0f + std::exp(-2.0f * z)) * up[i];
    }
}

void add(float* y, const float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; ++i) y[i] += x[i];
}

inline __m256 load8(const void* base, bool is_f16, int64_t i) {
    if (is_f16)
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
}

inline float load1(const void* base, bool is_f16, int64_t i) {
    return is_f16 ? _cvtsh_ss(static_cast<const uint16_t*>(base)[i]) : static_cast<const float*>(base)[i];
}

// Per query head: scores = scale * q.k_j, softmax, out = sum_j p_j v_j. The output row is
// accumulated in place, 8 lanes at a time; head_dim tails fall back to scalar.
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
            __m256 acc = _mm256_setzero_ps();
            int64_t d = 0;
            for (; d + 8 <= head_dim; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + d), load8(kr, f16, base + d), acc);
            float s = hsum(acc);
            for (; d < head_dim; ++d) s += qh[d] * load1(kr, f16, base + d);
            scratch[j] = s * scale;
        }
        softmax(scratch, n_kv);
        float* oh = out + h * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) oh[d] = 0.0f;
        for (int64_t j = 0; j < n_kv; ++j) {
            const void* vr = kv.v_row(j);
            const __m256 p = _mm256_set1_ps(scratch[j]);
            int64_t d = 0;
            for (; d + 8 <= head_dim; d += 8)
                _mm256_storeu_ps(oh + d, _mm256_fmadd_ps(p, load8(vr, f16, base + d), _mm256_loadu_ps(oh + d)));
            for (; d < head_dim; ++d) oh[d] += scratch[j] * load1(vr, f16, base + d);
        }
    }
}

}  // namespace

// F16C via CPUID leaf 1, ECX bit 29 (clang 14's __builtin_cpu_supports does not know "f16c").
static bool cpu_has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    return (ecx & (1u << 29)) != 0;
}

namespace {
packed_gemm_fn packed_gemm_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0: return packed_q4_0_gemm_avx2;
        case ggml_type::q4_1: return packed_q4_1_gemm_avx2;
        case ggml_type::q5_1: return packed_q5_1_gemm_avx2;
        case ggml_type::q5_0: return packed_q5_0_gemm_avx2;
        case ggml_type::q8_0: return packed_q8_0_gemm_avx2;
        case ggml_type::q2_k: return packed_q2_k_gemm_avx2;
        case ggml_type::q3_k: return packed_q3_k_gemm_avx2;
        case ggml_type::q4_k: return packed_q4_k_gemm_avx2;
        case ggml_type::q5_k: return packed_q5_k_gemm_avx2;
        case ggml_type::q6_k: return packed_q6_k_gemm_avx2;
        case ggml_type::f16: return packed_f16_gemm_avx2;
        case ggml_type::bf16: return packed_bf16_gemm_avx2;
        default: return nullptr;
    }
}
}  // namespace

const isa_ops* avx2_ops() {
    static const isa_ops* ops = []() -> const isa_ops* {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !cpu_has_f16c())
            return nullptr;
        static isa_ops o;
        o.id = impl::avx2;
        o.mul_mat_for = avx2_detail::mul_mat_for;
        o.packed_gemm_for = packed_gemm_for;
        o.quantize_q8_32 = avx2_detail::quantize_q8_32;
        o.quantize_q8_k = avx2_detail::quantize_q8_k;
        o.dot_f32 = dot_f32;
        o.rms_norm = rms_norm;
        o.softmax = softmax;
        o.swiglu = swiglu;
        o.geglu = geglu;
        o.add = add;
        o.attention = attention;
        o.flash_attention = flash_attention_avx2;
        return &o;
    }();
    return ops;
}

}  // namespace edgellm::kernels::cpu
