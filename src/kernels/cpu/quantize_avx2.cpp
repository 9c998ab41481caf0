// AVX2 activation quantizers, bit-identical to the portable ones in generic.cpp (same max, the same
// scalar d and 1/d, the same products and round-to-nearest-even), so every ISA still sees the same
// activations; they only replace a scalar nearbyint loop that showed up in decode profiles.
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu::avx2_detail {
namespace {

inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

inline float abs_max(const float* x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    return hmax(m);
}

// 32 floats times id, rounded, into 32 int8 at q; q32[k] gets the i32 values of elements 8k..8k+7.
inline void round_32(const float* x, float id, int8_t* q, __m256i (&q32)[4]) {
    const __m256 vid = _mm256_set1_ps(id);
    for (int k = 0; k < 4; ++k)
        q32[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    // packs interleave the 128-bit lanes; the permute puts the 32 bytes back in element order.
    const __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(q32[0], q32[1]), _mm256_packs_epi32(q32[2], q32[3]));
    const __m256i p8 = _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p8);
}

}  // namespace

void quantize_q8_32(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<act_q8_32*>(dst);
    for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        const float d = abs_max(xb, 32) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256i q32[4];
        round_32(xb, id, out[b].qs, q32);
        out[b].d = d;
        out[b].sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q32[0], q32[1]), _mm256_add_epi32(q32[2], q32[3])));
    }
}

void quantize_q8_k(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<q8_k_block*>(dst);
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const float* xb = x + b * QK_K;
        const float d = abs_max(xb, QK_K) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK_K / 32; ++j) {
            __m256i q32[4];
            round_32(xb + 32 * j, id, out[b].qs + 32 * j, q32);
            out[b].bsums[2 * j] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(q32[0], q32[1])));
            out[b].bsums[2 * j + 1] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(q32[2], q32[3])));
        }
        out[b].d = d;
    }
}

}  // namespace edgellm::kernels::cpu::avx2_detail
