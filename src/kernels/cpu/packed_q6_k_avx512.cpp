// AVX-512 VNNI gemm over Q6_K x8 groups (packed_q6_k.cpp). Per 16-element sub-block, 3 chunk loads
// unpack into 4 vectors of 6-bit weights (ternlog merges the nibble and the 2 high bits); each
// token's 4-byte activation broadcasts meet them with vpdpbusd, and the sub-block sum times the 8
// rows' scales adds into one i32 lane per row. The -32 offset of every weight is folded per pair
// of sub-blocks as vpdpwssd of (-32 * scale) with the activations' bsums.
// Bounds (i32): per sub-block |sum| <= 16*63*127 = 128016, times |scale| <= 128 and 16 sub-blocks
// is 2.6e8; the offset adds at most 16*4096*2032 = 1.3e8: far below 2^31.
#pragma GCC target("avx512vnni")
// GCC 12's avx512fintrin.h self-initialises "undefined" vectors and warns about it at every use.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/bcast_x86.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {


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

// ---- Prefill over two groups (16 rows), as packed_q4_k_avx512.cpp's gemm2 ----
// Decoded block: per sub-block s (16 elements), 4 vectors (dword lane i = the 6-bit weights
// 4k .. 4k + 3 of row i; rows 0-7 from the first group, 8-15 from the second); then the 16
// sub-blocks' scales as i32; then per pair p of sub-blocks the offset factors -32 * scale as i16
// pairs (of 2p, of 2p + 1); then the 16 rows' d as f32. Same integer sums and f32 operations per
// row as gemm_tile, so the same results bit for bit.
constexpr size_t k_dec2_sc_at = 16 * 4 * 64;
constexpr size_t k_dec2_off_at = k_dec2_sc_at + 16 * 64;
constexpr size_t k_dec2_d_at = k_dec2_off_at + 8 * 64;
constexpr size_t k_dec2_block_bytes = k_dec2_d_at + 64;

template <size_t N>
inline auto load2(const uint8_t* g0, const uint8_t* g1, size_t at) {
    if constexpr (N == 32) {
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g0 + at))),
                                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g1 + at)), 1);
    } else {
        static_assert(N == 16);
        return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0 + at))),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(g1 + at)), 1);
    }
}

inline __m512i and_or512(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xEA); }

void decode_pair(const uint8_t* g0, const uint8_t* g1, int64_t nb, uint8_t* dec) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    for (int64_t b = 0; b < nb; ++b, g0 += k_q6_k_group_block_bytes, g1 += k_q6_k_group_block_bytes, dec += k_dec2_block_bytes) {
        for (int s = 0; s < 16; ++s) {
            const size_t q = 144 + 96 * size_t(s);
            const __m512i c0 = load2<32>(g0, g1, q), c1 = load2<32>(g0, g1, q + 32), h = load2<32>(g0, g1, q + 64);
            auto* out = reinterpret_cast<__m512i*>(dec + 256 * s);
            _mm512_store_si512(out + 0, and_or512(c0, m4, _mm512_and_si512(_mm512_slli_epi16(h, 4), m30)));
            _mm512_store_si512(out + 1, and_or512(_mm512_srli_epi16(c0, 4), m4, _mm512_and_si512(_mm512_slli_epi16(h, 2), m30)));
            _mm512_store_si512(out + 2, and_or512(c1, m4, _mm512_and_si512(h, m30)));
            _mm512_store_si512(out + 3, and_or512(_mm512_srli_epi16(c1, 4), m4, _mm512_and_si512(_mm512_srli_epi16(h, 2), m30)));
        }
        for (int p = 0; p < 8; ++p) {
            const __m512i sp = _mm512_cvtepi8_epi16(load2<16>(g0, g1, 16 + 16 * size_t(p)));
            _mm512_store_si512(reinterpret_cast<__m512i*>(dec + k_dec2_off_at + 64 * p), _mm512_mullo_epi16(sp, _mm512_set1_epi16(-32)));
            _mm512_store_si512(reinterpret_cast<__m512i*>(dec + k_dec2_sc_at + 64 * (2 * p)), _mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16));
            _mm512_store_si512(reinterpret_cast<__m512i*>(dec + k_dec2_sc_at + 64 * (2 * p + 1)), _mm512_srai_epi32(sp, 16));
        }
        const __m512 d = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0)))),
                                            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g1))), 1);
        _mm512_store_ps(reinterpret_cast<float*>(dec + k_dec2_d_at), d);
    }
}


template <int T>
void gemm_tile_pair(const uint8_t* dec, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, dec += k_dec2_block_bytes) {
        __m512i si[T];
        for (int t = 0; t < T; ++t) si[t] = _mm512_setzero_si512();
        for (int p = 0; p < 8; ++p) {
            const __m512i offs = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + k_dec2_off_at + 64 * p));
            for (int t = 0; t < T; ++t) si[t] = _mm512_dpwssd_epi32(si[t], offs, bcast4z(a[t][b].bsums + 2 * p));
        }
        for (int s = 0; s < 16; ++s) {
            const auto* w = reinterpret_cast<const __m512i*>(dec + 256 * s);
            const __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 1), w2 = _mm512_load_si512(w + 2),
                          w3 = _mm512_load_si512(w + 3);
            const __m512i sc = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + k_dec2_sc_at + 64 * s));
            for (int t = 0; t < T; ++t) {
                const int8_t* x = a[t][b].qs + 16 * s;
                __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, bcast4z(x));
                d = _mm512_dpbusd_epi32(d, w1, bcast4z(x + 4));
                d = _mm512_dpbusd_epi32(d, w2, bcast4z(x + 8));
                d = _mm512_dpbusd_epi32(d, w3, bcast4z(x + 12));
                si[t] = _mm512_add_epi32(si[t], _mm512_mullo_epi32(d, sc));
            }
        }
        const __m512 d16 = _mm512_load_ps(reinterpret_cast<const float*>(dec + k_dec2_d_at));
        for (int t = 0; t < T; ++t)
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si[t]), _mm512_mul_ps(d16, _mm512_set1_ps(a[t][b].d)), acc[t]);
    }
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

}  // namespace

void packed_q6_k_gemm2_avx512(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                              float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(groups);
    const int64_t nb = n_cols / QK_K;
    uint8_t* dec = packed_decode_scratch(size_t(nb) * k_dec2_block_bytes);
    if (!dec) {  // no scratch: the two groups one by one
        packed_q6_k_gemm_avx512(g, act, act_stride, n_tokens, n_cols, y, y_stride);
        packed_q6_k_gemm_avx512(g + size_t(nb) * k_q6_k_group_block_bytes, act, act_stride, n_tokens, n_cols, y + k_pack_rows, y_stride);
        return;
    }
    decode_pair(g, g + size_t(nb) * k_q6_k_group_block_bytes, nb, dec);
    for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile_pair<decltype(width)::value>(dec, a, nb, yt, y_stride);
    });
}

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
