// AVX-512 VNNI gemm over Q8_0 x8 groups (packed_q8_0.cpp). One 512-bit load holds 8 weights of all
// 8 rows (two i32 lanes per row) and meets a token's 8-byte activation broadcast in one vpdpbusd.
// vpdpbusd multiplies unsigned by signed bytes, so the weights go in as w ^ 0x80 = w + 128 (made
// once, shared by the tokens) and each lane is seeded with its half of -128 * sum(a): exact for
// every int8 weight, -128 included. i32 bounds: 32 * 255 * 127 per block, far below 2^31.
#pragma GCC target("avx512vnni")
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/packed_q8_0.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

// All lanes. g++ 12 warns that the "undefined" pass-through operand of the unmasked 512-bit
// permute / convert / cast intrinsics is uninitialized (GCC bug 105593); their zero-masked forms
// with every lane selected compute the same without that operand.
constexpr __mmask16 k_all = 0xFFFF;

inline __m512i bcast8(const int8_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
}

template <int T>
void gemm_tile(const uint8_t* g, const act_q8_32* const* a, int64_t nb, float* y, size_t y_stride) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += k_q8_0_group_block_bytes) {
        // The 8 f16 scales, each twice: lanes 2r and 2r+1 belong to row r.
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g));
        const __m512 d16 = _mm512_maskz_cvtph_ps(k_all, _mm256_set_m128i(_mm_unpackhi_epi16(h, h), _mm_unpacklo_epi16(h, h)));
        __m512i s[T];
        for (int t = 0; t < T; ++t) s[t] = _mm512_set1_epi32(-64 * a[t][b].sum);
        for (int m = 0; m < 4; ++m) {
            const __m512i u = _mm512_xor_si512(_mm512_loadu_si512(g + 16 + 64 * m), bias);
            for (int t = 0; t < T; ++t) s[t] = _mm512_dpbusd_epi32(s[t], u, bcast8(a[t][b].qs + 8 * m));
        }
        for (int t = 0; t < T; ++t)
            acc[t] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(k_all, s[t]), _mm512_mul_ps(d16, _mm512_set1_ps(a[t][b].d)), acc[t]);
    }
    // Row r = lane 2r + lane 2r+1.
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15);
    for (int t = 0; t < T; ++t) {
        const __m512 r = _mm512_add_ps(_mm512_maskz_permutexvar_ps(k_all, even, acc[t]), _mm512_maskz_permutexvar_ps(k_all, odd, acc[t]));
        _mm512_mask_storeu_ps(y + size_t(t) * y_stride, 0x00FF, r);
    }
}

}  // namespace

void packed_q8_0_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK8_0;
    for_each_token_tile<8, act_q8_32>(act, act_stride, n_tokens, y, y_stride,
                                  [&](auto width, const act_q8_32* const* a, float* yt) {
                                      gemm_tile<decltype(width)::value>(g, a, nb, yt, y_stride);
                                  });
}

}  // namespace edgellm::kernels::cpu
