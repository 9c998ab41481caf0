// AVX-512 VNNI gemm over Q6_K x8 groups (packed_q6_k.cpp). Per 16-element sub-block, 3 chunk loads
// unpack into 4 vectors of 6-bit weights (ternlog merges the nibble and the 2 high bits); each
// token's 4-byte activation broadcasts meet them with vpdpbusd, and the sub-block sum times the 8
// rows' scales adds into one i32 lane per row. The -32 offset of every weight is folded per pair
// of sub-blocks as vpdpwssd of (-32 * scale) with the activations' bsums.
// Bounds (i32): per sub-block |sum| <= 16*63*127 = 128016, times |scale| <= 128 and 16 sub-blocks
// is 2.6e8; the offset adds at most 16*4096*2032 = 1.3e8: far below 2^31.
#pragma GCC target("avx512vnni")
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

inline __m256i bcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// (a & b) | c
inline __m256i and_or(__m256i a, __m256i b, __m256i c) { return _mm256_ternarylogic_epi32(a, b, c, 0xEA); }

template <int T>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    const __m256i m32 = _mm256_set1_epi16(-32);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += k_q6_k_group_block_bytes) {
        __m256i si[T];
        for (int t = 0; t < T; ++t) si[t] = _mm256_setzero_si256();
        const uint8_t* q = g + 144;
        for (int p = 0; p < 8; ++p) {
            const __m256i sp = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16 + 16 * p)));
            const __m256i offs = _mm256_mullo_epi16(sp, m32);
            for (int t = 0; t < T; ++t) si[t] = _mm256_dpwssd_epi32(si[t], offs, bcast4(a[t][b].bsums + 2 * p));
            for (int i = 0; i < 2; ++i, q += 96) {
                const __m256i sc = i == 0 ? _mm256_srai_epi32(_mm256_slli_epi32(sp, 16), 16) : _mm256_srai_epi32(sp, 16);
                const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
                const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32));
                const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64));
                const __m256i v0 = and_or(c0, m4, _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
                const __m256i v1 = and_or(_mm256_srli_epi16(c0, 4), m4, _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
                const __m256i v2 = and_or(c1, m4, _mm256_and_si256(h, m30));
                const __m256i v3 = and_or(_mm256_srli_epi16(c1, 4), m4, _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
                const int s = 2 * p + i;
                for (int t = 0; t < T; ++t) {
                    const int8_t* x = a[t][b].qs + 16 * s;
                    __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), v0, bcast4(x));
                    d = _mm256_dpbusd_epi32(d, v1, bcast4(x + 4));
                    d = _mm256_dpbusd_epi32(d, v2, bcast4(x + 8));
                    d = _mm256_dpbusd_epi32(d, v3, bcast4(x + 12));
                    si[t] = _mm256_add_epi32(si[t], _mm256_mullo_epi32(d, sc));
                }
            }
        }
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        for (int t = 0; t < T; ++t)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[t]), _mm256_mul_ps(d8, _mm256_set1_ps(a[t][b].d)), acc[t]);
    }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

}  // namespace

void packed_q6_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride,
                                  [&](auto width, const q8_k_block* const* a, float* yt) {
                                      gemm_tile<decltype(width)::value>(g, a, nb, yt, y_stride);
                                  });
}

}  // namespace edgellm::kernels::cpu
