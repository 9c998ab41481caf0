// AVX-512 VNNI gemms over Q3_K and Q2_K x8 groups (packed_q3_k.cpp, packed_q2_k.cpp): the weights
// unpack as in the AVX2 ones; vpdpbusd sums each token's 4 chunks of a 16-element sub-block into
// the row's i32 lane, one i32 multiply by the rows' scales adds it up, and Q3_K's -4 offset
// (Q2_K's mins) is vpdpwssd of (-4 * scale) (of the mins) with the activations' bsums. 8-token
// tiles. i32 bounds: see packed_q3_k_avx2.cpp.
#pragma GCC target("avx512vnni")
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/bcast_x86.h"
#include "kernels/cpu/packed_hbits_x86.h"
#include "kernels/cpu/packed_q3_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {


template <int T, bool Q2>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr size_t block_bytes = Q2 ? k_q2_k_group_block_bytes : k_q3_k_group_block_bytes;
    constexpr size_t scales_at = Q2 ? k_q2_k_scales_at : k_q3_k_scales_at;
    constexpr size_t q_at = Q2 ? k_q2_k_q_at : k_q3_k_q_at;
    const __m256i m3 = _mm256_set1_epi8(0x03);
    const __m256i m_4 = _mm256_set1_epi16(-4);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        __m256i si[T], ms[T];
        for (int t = 0; t < T; ++t) si[t] = ms[t] = _mm256_setzero_si256();
        auto stretch = [&](auto hjc) {
            constexpr int hj = decltype(hjc)::value, h = hj / 4, j = hj % 4;
            const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + scales_at + 16 * hj));
            __m256i sp;  // i16 lanes 2r, 2r + 1: row r's scales of sub-blocks 2hj, 2hj + 1
            if constexpr (Q2) {
                sp = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
                const __m256i mp = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
                for (int t = 0; t < T; ++t) ms[t] = _mm256_dpwssd_epi32(ms[t], mp, bcast4(a[t][b].bsums + 2 * hj));
            } else {
                sp = _mm256_cvtepi8_epi16(raw);
                const __m256i offs = _mm256_mullo_epi16(sp, m_4);
                for (int t = 0; t < T; ++t) si[t] = _mm256_dpwssd_epi32(si[t], offs, bcast4(a[t][b].bsums + 2 * hj));
            }
            auto sub_block = [&](auto ic) {
                constexpr int i = decltype(ic)::value;
                // Row r's scale of sub-block 2hj + i as an i32.
                const __m256i sc = i == 0 ? _mm256_srai_epi32(_mm256_slli_epi32(sp, 16), 16) : _mm256_srai_epi32(sp, 16);
                __m256i s[T];
                for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int c = 4 * i; c < 4 * i + 4; ++c) {
                    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + q_at + 256 * h + 32 * c));
                    __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                    if constexpr (!Q2) {
                        const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + k_q3_k_h_at + 32 * c));
                        v = _mm256_or_si256(v, bit_to<hj, 2>(hm));
                    }
                    for (int t = 0; t < T; ++t)
                        s[t] = _mm256_dpbusd_epi32(s[t], v, bcast4(a[t][b].qs + 128 * h + 32 * j + 4 * c));
                }
                for (int t = 0; t < T; ++t) si[t] = _mm256_add_epi32(si[t], _mm256_mullo_epi32(s[t], sc));
            };
            sub_block(std::integral_constant<int, 0>{});
            sub_block(std::integral_constant<int, 1>{});
        };
        stretch(std::integral_constant<int, 0>{});
        stretch(std::integral_constant<int, 1>{});
        stretch(std::integral_constant<int, 2>{});
        stretch(std::integral_constant<int, 3>{});
        stretch(std::integral_constant<int, 4>{});
        stretch(std::integral_constant<int, 5>{});
        stretch(std::integral_constant<int, 6>{});
        stretch(std::integral_constant<int, 7>{});
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        for (int t = 0; t < T; ++t) {
            const __m256 da = _mm256_set1_ps(a[t][b].d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[t]), _mm256_mul_ps(d8, da), acc[t]);
            if constexpr (Q2) {
                const __m256 dmin8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms[t]), _mm256_mul_ps(dmin8, da), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

template <bool Q2>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride,
                                       [&](auto width, const q8_k_block* const* a, float* yt) {
                                           gemm_tile<decltype(width)::value, Q2>(g, a, nb, yt, y_stride);
                                       });
}

}  // namespace

void packed_q3_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q2_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
