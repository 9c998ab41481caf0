// AVX-512 op table (CPUs with AVX-512 VL + VNNI): the AVX2 table with the Q4_0, Q8_0 (here) and
// Q4_1 / Q5_0 / Q5_1 (mul_mat_legacy_avx512.cpp) products replaced by VNNI versions, where one vpdpbusd does the work of maddubs + madd (u8 x i8 summed
// into i32, no i16 saturation). Decode is memory-bound either way; this helps prefill.
#pragma GCC target("avx512vnni")
// GCC 12's avx512fintrin.h self-initialises "undefined" vectors and warns about it at every use.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>

#include <cstring>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_f16.h"
#include "kernels/cpu/packed_q3_k.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_q8_0.h"

namespace edgellm::kernels::cpu {
namespace avx2_detail {
mul_mat_kernel mul_mat_for(ggml_type t);
void set_legacy_kernels_vnni(ggml_type t, mul_mat_kernel& k);  // mul_mat_legacy_avx512.cpp
}
namespace avx512_bf16 {  // mul_mat_bf16_avx512.cpp
bool supported();
void quantize_pair(const float* x, void* dst, int64_t n);
mul_mat_kernel kernel();
}

namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256i lane0(int32_t v) { return _mm256_setr_epi32(v, 0, 0, 0, 0, 0, 0, 0); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

template <class A, int T>
inline void act_rows(const void* av, size_t stride, const A* (&a)[T]) {
    for (int t = 0; t < T; ++t) a[t] = reinterpret_cast<const A*>(static_cast<const uint8_t*>(av) + size_t(t) * stride);
}

template <int T>
void dot_q4_0_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q4_0_block*>(wv);
    const act_q8_32* a[T];
    act_rows(av, a_stride, a);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; ++b) {
        const float d = _cvtsh_ss(w[b].d);
        const __m256i q = unpack_nibbles(w[b].qs);
        for (int t = 0; t < T; ++t) {
            const __m256i p = _mm256_dpbusd_epi32(lane0(-8 * a[t][b].sum), q, load256(a[t][b].qs));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[t][b].d), _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

template <int T>
void dot_q8_0_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q8_0_block*>(wv);
    const act_q8_32* a[T];
    act_rows(av, a_stride, a);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; ++b) {
        const float d = _cvtsh_ss(w[b].d);
        const __m256i q = load256(w[b].qs);
        const __m256i aq = _mm256_sign_epi8(q, q);  // |q|; the sign moves onto the activations
        for (int t = 0; t < T; ++t) {
            const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aq, _mm256_sign_epi8(load256(a[t][b].qs), q));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[t][b].d), _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

// Single-token dots with two independent accumulators (one FMA chain would bound a block to
// the FMA latency).
float dot_q4_0_1(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q4_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / 32; ++b) {
        const __m256i p = _mm256_dpbusd_epi32(lane0(-8 * a[b].sum), unpack_nibbles(w[b].qs), load256(a[b].qs));
        acc[b & 1] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc[b & 1]);
    }
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

float dot_q8_0_1(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q8_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / 32; ++b) {
        const __m256i q = load256(w[b].qs);
        const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(load256(a[b].qs), q));
        acc[b & 1] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p), acc[b & 1]);
    }
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

// F16 rows against f32 activations with 512-bit registers: 16 weights per conversion and FMA
// (the AVX2 dot takes two of each), four accumulators. Decode of F16 is memory-bound; the
// narrower loop left it short of the bandwidth.
float dot_f16_512(const void* wv, const void* xv, int64_t n) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const auto* x = static_cast<const float*>(xv);
    auto load = [&](int64_t k) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k))); };
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 4; ++k) acc[k] = _mm512_fmadd_ps(load(i + 16 * k), _mm512_loadu_ps(x + i + 16 * k), acc[k]);
    for (; i + 16 <= n; i += 16) acc[0] = _mm512_fmadd_ps(load(i), _mm512_loadu_ps(x + i), acc[0]);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) s += _cvtsh_ss(w[i]) * x[i];
    return s;
}

// F16 against T (2..4) activation rows: each 16 weights are converted once and used T times.
template <int T>
void dot_f16_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const float* x[T];
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(av) + size_t(t) * a_stride);
    __m512 acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = _mm512_setzero_ps(), acc[t][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
        const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i + 16)));
        for (int t = 0; t < T; ++t) {
            acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + i), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[t] + i + 16), acc[t][1]);
        }
    }
    if (i < n) {  // the last 1..31 weights, with masked loads
        const int64_t r = n - i;
        const auto m = r >= 32 ? ~uint32_t(0) : (uint32_t(1) << r) - 1;
        const __mmask16 m0 = __mmask16(m), m1 = __mmask16(m >> 16);
        const __m512 w0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, w + i));
        const __m512 w1 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, w + i + 16));
        for (int t = 0; t < T; ++t) {
            acc[t][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, x[t] + i), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, x[t] + i + 16), acc[t][1]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
}

// BF16 decode: a 64-byte load holds 32 weights as 16 lanes of (odd << 16 | even); the even
// weights are the lanes shifted left by 16 and the odd ones the lanes with the low half cleared,
// each already an f32. The activations come in the matching order (act_format::f32_even_odd),
// so 32 weights cost a load, a shift, an and and two FMAs, where widening them took two
// zero-extending shuffles and two shifts. TinyLlama BF16 tg32, 2 threads, alternating runs:
// 10.28 / 10.38 -> 11.60 / 11.88 tokens/s (llama.cpp 10.8-10.9 in the same runs).
void convert_f32_even_odd(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<float*>(dst);
    const __m512i even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_idx = _mm512_add_epi32(even_idx, _mm512_set1_epi32(1));
    for (int64_t i = 0; i < n; i += 32, out += 32) {
        const int64_t r = std::min<int64_t>(32, n - i);
        const auto m = r >= 32 ? ~uint32_t(0) : (uint32_t(1) << r) - 1;
        const __m512 x0 = _mm512_maskz_loadu_ps(__mmask16(m), x + i);
        const __m512 x1 = _mm512_maskz_loadu_ps(__mmask16(m >> 16), x + i + 16);
        _mm512_storeu_ps(out, _mm512_permutex2var_ps(x0, even_idx, x1));
        _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(x0, odd_idx, x1));
    }
}

float dot_bf16_even_odd(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const auto* a = static_cast<const float*>(av);
    const __m512i hi_mask = _mm512_set1_epi32(int(0xFFFF0000u));
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    auto step = [&](__m512i wi, const float* ac, __m512& e, __m512& o) {
        e = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(wi, 16)), _mm512_loadu_ps(ac), e);
        o = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(wi, hi_mask)), _mm512_loadu_ps(ac + 16), o);
    };
    int64_t i = 0;
    for (; i + 64 <= n; i += 64, a += 64) {
        step(_mm512_loadu_si512(w + i), a, acc[0], acc[1]);
        step(_mm512_loadu_si512(w + i + 32), a + 32, acc[2], acc[3]);
    }
    for (; i < n; i += 32, a += 32) {
        const int64_t r = std::min<int64_t>(32, n - i);
        const auto m = r >= 32 ? ~uint32_t(0) : (uint32_t(1) << r) - 1;
        step(_mm512_maskz_loadu_epi16(__mmask32(m), w + i), a, acc[0], acc[1]);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// Prefill only: BF16 through vdpbf16ps (mul_mat_bf16_avx512.cpp); kernels_bench 5632x2048, 4
// tokens, 1 thread: 2.38 ms against 2.76 for F16 through the FMA loop BF16 used before. Decode
// keeps dot_bf16_even_odd: the bf16 dot measured 5-9% slower than even the older widening loop
// there (TinyLlama BF16 tg32, 2 threads).
mul_mat_kernel mul_mat_batch_for(ggml_type t) {
    return t == ggml_type::bf16 ? avx512_bf16::kernel() : mul_mat_kernel{};
}

packed_gemm_fn packed_gemm_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0: return packed_q4_0_gemm_avx512;
        case ggml_type::q4_1: return packed_q4_1_gemm_avx512;
        case ggml_type::q5_1: return packed_q5_1_gemm_avx512;
        case ggml_type::q5_0: return packed_q5_0_gemm_avx512;
        case ggml_type::q8_0: return packed_q8_0_gemm_avx512;
        case ggml_type::q2_k: return packed_q2_k_gemm_avx512;
        case ggml_type::q3_k: return packed_q3_k_gemm_avx512;
        case ggml_type::q4_k: return packed_q4_k_gemm_avx512;
        case ggml_type::q5_k: return packed_q5_k_gemm_avx512;
        case ggml_type::q6_k: return packed_q6_k_gemm_avx512;
        case ggml_type::f16: return packed_f16_gemm_avx512;
        case ggml_type::bf16: return packed_bf16_gemm_avx512;
        default: return avx2_ops()->packed_gemm_for(t);
    }
}

packed_gemm_fn packed_gemm2_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_k: return packed_q4_k_gemm2_avx512;
        case ggml_type::q5_k: return packed_q5_k_gemm2_avx512;
        case ggml_type::q6_k: return packed_q6_k_gemm2_avx512;
        default: return nullptr;
    }
}

mul_mat_kernel mul_mat_for(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0:
            return {act_format::q8_32, dot_q4_0_1, {nullptr, dot_q4_0_n<2>, dot_q4_0_n<3>, dot_q4_0_n<4>}};
        case ggml_type::q8_0:
            return {act_format::q8_32, dot_q8_0_1, {nullptr, dot_q8_0_n<2>, dot_q8_0_n<3>, dot_q8_0_n<4>}};
        case ggml_type::q4_1:
        case ggml_type::q5_0:
        case ggml_type::q5_1: {
            mul_mat_kernel k = avx2_detail::mul_mat_for(t);
            avx2_detail::set_legacy_kernels_vnni(t, k);
            return k;
        }
        case ggml_type::f16: {
            mul_mat_kernel k = avx2_detail::mul_mat_for(t);
            k.dot = dot_f16_512;
            k.dot_n[1] = dot_f16_n<2>, k.dot_n[2] = dot_f16_n<3>, k.dot_n[3] = dot_f16_n<4>;
            return k;
        }
        case ggml_type::bf16: return {act_format::f32_even_odd, dot_bf16_even_odd};
        default: return avx2_detail::mul_mat_for(t);
    }
}

}  // namespace

const isa_ops* avx512_ops() {
    static const isa_ops* ops = []() -> const isa_ops* {
        __builtin_cpu_init();
        const isa_ops* base = avx2_ops();
        if (!base || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl") ||
            !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vnni"))
            return nullptr;
        static isa_ops o = *base;
        o.id = impl::avx512;
        o.mul_mat_for = mul_mat_for;
        o.packed_gemm_for = packed_gemm_for;
        o.packed_gemm2_for = packed_gemm2_for;
        o.flash_attention = flash_attention_avx512;
        o.convert_f32_even_odd = convert_f32_even_odd;
        if (avx512_bf16::supported()) {
            o.quantize_bf16_pair = avx512_bf16::quantize_pair;
            o.mul_mat_batch_for = mul_mat_batch_for;
        }
        return &o;
    }();
    return ops;
}

}  // namespace edgellm::kernels::cpu
