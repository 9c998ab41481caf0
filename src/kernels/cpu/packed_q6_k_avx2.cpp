// AVX2 gemm over Q6_K x8 groups (packed_q6_k.cpp): per 16-element sub-block, 3 chunk loads unpack
// into 4 vectors of 6-bit weights; each token's 4-byte activation broadcasts meet them with
// maddubs, two of them summed in i16, then madd with the rows' scale (duplicated in both i16
// lanes of each row) adds into one i32 lane per row. The -32 offset is folded per pair of
// sub-blocks as madd of (-32 * scale) with the activations' bsums.
// i16 saturation: one maddubs lane is 2 products of q <= 63 and |a| <= 128, at most 16128; two
// summed stay at most 32256 < 32767. i32 bounds: see packed_q6_k_avx512.cpp.

#include "kernels/cpu/bcast_x86.h"
#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {


inline __m256i merge(__m256i lo, __m256i m4, __m256i hi, __m256i m30) {
    return _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_and_si256(hi, m30));
}

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
            for (int t = 0; t < T; ++t)
                si[t] = _mm256_add_epi32(si[t], _mm256_madd_epi16(offs, bcast4(a[t][b].bsums + 2 * p)));
            for (int i = 0; i < 2; ++i, q += 96) {
                // Row r's scale in both i16 lanes 2r, 2r+1.
                const __m256i sc = i == 0 ? _mm256_blend_epi16(sp, _mm256_slli_epi32(sp, 16), 0xAA)
                                          : _mm256_blend_epi16(_mm256_srli_epi32(sp, 16), sp, 0xAA);
                const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
                const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32));
                const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64));
                const __m256i v0 = merge(c0, m4, _mm256_slli_epi16(h, 4), m30);
                const __m256i v1 = merge(_mm256_srli_epi16(c0, 4), m4, _mm256_slli_epi16(h, 2), m30);
                const int s = 2 * p + i;
                for (int t = 0; t < T; ++t) {
                    const int8_t* x = a[t][b].qs + 16 * s;
                    const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(v0, bcast4(x)), _mm256_maddubs_epi16(v1, bcast4(x + 4)));
                    si[t] = _mm256_add_epi32(si[t], _mm256_madd_epi16(p01, sc));
                }
                const __m256i v2 = merge(c1, m4, h, m30);
                const __m256i v3 = merge(_mm256_srli_epi16(c1, 4), m4, _mm256_srli_epi16(h, 2), m30);
                for (int t = 0; t < T; ++t) {
                    const int8_t* x = a[t][b].qs + 16 * s;
                    const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(v2, bcast4(x + 8)), _mm256_maddubs_epi16(v3, bcast4(x + 12)));
                    si[t] = _mm256_add_epi32(si[t], _mm256_madd_epi16(p23, sc));
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

void packed_q6_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<4, q8_k_block>(act, act_stride, n_tokens, y, y_stride,
                                  [&](auto width, const q8_k_block* const* a, float* yt) {
                                      gemm_tile<decltype(width)::value>(g, a, nb, yt, y_stride);
                                  });
}

}  // namespace edgellm::kernels::cpu
