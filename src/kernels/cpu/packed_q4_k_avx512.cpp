// AVX-512 VNNI gemm over Q4_K x8 groups (packed_q4_k.cpp): as the AVX2 one, but vpdpbusd adds
// each 4-byte product sum straight into the row's i32 lane per sub-block, then one i32 multiply
// by the rows' scales. 8-token tiles (the 32 vector registers hold 16 sub-block sums).
// i32 bounds: a sub-block sum is at most 32 * 15 * 128 = 61440, times a scale <= 63, 8 summed.
// Q5_K (Q5 = true, same code): each nibble vector ORed with its fifth bit from the chunk's qh
// vector; sums at most 32 * 31 * 128 * 63 * 8 < 2^26.
//
// Prefill (gemm2, two groups = 16 rows, used by mul_mat_packed from 16 tokens): the 16 rows are
// first decoded once per call into a per-thread scratch of plain bytes (nibbles with their fifth
// bits; scales, mins, d, dmin widened), one row per dword lane of a 512-bit vector, so a token
// tile is bare vpdpbusd with the activations' 4 bytes broadcast, 8 independent
// chains, and one vpmulld per 16 rows, token and sub-block. The same integer sums and f32
// operations per row as the 8-row tiles, so the results are bit for bit those of gemm.
#pragma GCC target("avx512vnni")
// GCC 12's avx512fintrin.h self-initialises "undefined" vectors and warns about it at every use.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/bcast_x86.h"
#include "kernels/cpu/packed_hbits_x86.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {


inline __m256i row_i32(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

template <int T, bool Q5>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr size_t block_bytes = Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        // Mins first, folded into acc at once, so only acc, si and one sub-block sum per token
        // stay live below (3 * 8 of the 32 registers; keeping lo and hi sums and the mins live
        // as well spilled to the stack).
        {
            const __m256 dmin8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
            __m256i ms[T];
            for (int t = 0; t < T; ++t) ms[t] = _mm256_setzero_si256();
            for (int s = 0; s < 8; ++s) {
                const __m256i m = row_i32(g + k_q4_k_mins_at + 8 * s);
                const __m256i mp = _mm256_or_si256(m, _mm256_slli_epi32(m, 16));
                for (int t = 0; t < T; ++t) ms[t] = _mm256_add_epi32(ms[t], _mm256_madd_epi16(mp, bcast4(a[t][b].bsums + 2 * s)));
            }
            for (int t = 0; t < T; ++t)
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms[t]), _mm256_mul_ps(dmin8, _mm256_set1_ps(a[t][b].d)), acc[t]);
        }
        __m256i si[T];
        for (int t = 0; t < T; ++t) si[t] = _mm256_setzero_si256();
        // Sub-block 2j + hi: the low (hi = 0) or high (hi = 1) nibbles of the 8 chunks of pair j.
        auto sub_block = [&](auto jc, auto hic) {
            constexpr int j = decltype(jc)::value, hi = decltype(hic)::value;
            const uint8_t* q = g + k_q4_k_q_at + 256 * j;
            __m256i sb[T];
            for (int t = 0; t < T; ++t) sb[t] = _mm256_setzero_si256();
            for (int c = 0; c < 8; ++c) {
                const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
                __m256i v = _mm256_and_si256(hi ? _mm256_srli_epi16(w, 4) : w, m4);
                if constexpr (Q5)
                    v = _mm256_or_si256(v, hbit4<2 * j + hi>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + k_q5_k_qh_at + 32 * c))));
                for (int t = 0; t < T; ++t) sb[t] = _mm256_dpbusd_epi32(sb[t], v, bcast4(a[t][b].qs + 64 * j + 32 * hi + 4 * c));
            }
            const __m256i sc = row_i32(g + k_q4_k_scales_at + 8 * (2 * j + hi));
            for (int t = 0; t < T; ++t) si[t] = _mm256_add_epi32(si[t], _mm256_mullo_epi32(sb[t], sc));
        };
        using c0 = std::integral_constant<int, 0>;
        using c1 = std::integral_constant<int, 1>;
        sub_block(c0{}, c0{});
        sub_block(c0{}, c1{});
        sub_block(c1{}, c0{});
        sub_block(c1{}, c1{});
        sub_block(std::integral_constant<int, 2>{}, c0{});
        sub_block(std::integral_constant<int, 2>{}, c1{});
        sub_block(std::integral_constant<int, 3>{}, c0{});
        sub_block(std::integral_constant<int, 3>{}, c1{});
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        for (int t = 0; t < T; ++t)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[t]), _mm256_mul_ps(d8, _mm256_set1_ps(a[t][b].d)), acc[t]);
    }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

// ---- Prefill over two groups (16 rows): one row per dword lane ----
// Decoded block of a group pair: per sub-block s, 8 vectors w[s][k] (dword lane i = weights
// 4k .. 4k + 3 of sub-block s of row i, rows 0-7 from the first group, 8-15 from the second), met
// by a 4-byte broadcast of the activations (GCC keeps it a separate vpbroadcastd; forcing the
// embedded-broadcast form with inline asm measured no faster); then the sub-blocks' scales as i32, their
// mins as i16 pairs (m, m), and the 16 rows' d and dmin as f32.
constexpr size_t k_dec2_w_bytes = 8 * 8 * 64;
constexpr size_t k_dec2_sc_at = k_dec2_w_bytes;
constexpr size_t k_dec2_mn_at = k_dec2_sc_at + 8 * 64;
constexpr size_t k_dec2_d_at = k_dec2_mn_at + 8 * 64;
constexpr size_t k_dec2_block_bytes = k_dec2_d_at + 2 * 64;

inline __m512i load2(const uint8_t* g0, const uint8_t* g1, size_t at) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g0 + at))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g1 + at)), 1);
}

inline __m512i rows16_i32(const uint8_t* g0, const uint8_t* g1, size_t at) {
    __m128i v;
    std::memcpy(&v, g0 + at, 8);
    v = _mm_insert_epi64(v, [&] { int64_t x; std::memcpy(&x, g1 + at, 8); return x; }(), 1);
    return _mm512_cvtepu8_epi32(v);
}

template <bool Q5>
void decode_pair(const uint8_t* g0, const uint8_t* g1, int64_t nb, uint8_t* dec) {
    constexpr size_t block_bytes = Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m10 = _mm512_set1_epi8(0x10);
    for (int64_t b = 0; b < nb; ++b, g0 += block_bytes, g1 += block_bytes, dec += k_dec2_block_bytes) {
        for (int j = 0; j < 4; ++j)
            for (int c = 0; c < 8; ++c) {
                const __m512i w = load2(g0, g1, k_q4_k_q_at + 256 * j + 32 * c);
                __m512i lo = _mm512_and_si512(w, m4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), m4);
                if constexpr (Q5) {
                    // bit 2j (low nibble) and 2j + 1 (high) of each qh byte -> bit 4: (h' & 0x10) | v
                    const __m512i h = _mm512_srlv_epi16(load2(g0, g1, k_q5_k_qh_at + 32 * c), _mm512_set1_epi16(short(2 * j)));
                    lo = _mm512_ternarylogic_epi32(_mm512_slli_epi16(h, 4), m10, lo, 0xEA);
                    hi = _mm512_ternarylogic_epi32(_mm512_slli_epi16(h, 3), m10, hi, 0xEA);
                }
                _mm512_store_si512(reinterpret_cast<__m512i*>(dec + 512 * (2 * j) + 64 * c), lo);
                _mm512_store_si512(reinterpret_cast<__m512i*>(dec + 512 * (2 * j + 1) + 64 * c), hi);
            }
        for (int s = 0; s < 8; ++s) {
            _mm512_store_si512(reinterpret_cast<__m512i*>(dec + k_dec2_sc_at + 64 * s), rows16_i32(g0, g1, k_q4_k_scales_at + 8 * s));
            const __m512i m = rows16_i32(g0, g1, k_q4_k_mins_at + 8 * s);
            _mm512_store_si512(reinterpret_cast<__m512i*>(dec + k_dec2_mn_at + 64 * s), _mm512_or_si512(m, _mm512_slli_epi32(m, 16)));
        }
        const __m512 d = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0)))),
                                            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g1))), 1);
        const __m512 dm = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0 + 16)))),
                                             _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g1 + 16))), 1);
        _mm512_store_ps(reinterpret_cast<float*>(dec + k_dec2_d_at), d);
        _mm512_store_ps(reinterpret_cast<float*>(dec + k_dec2_d_at + 64), dm);
    }
}


// The same per-row f32 operations on the same integer sums as gemm_tile, 16 rows per vector.
template <int T>
void gemm_tile_pair(const uint8_t* dec, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, dec += k_dec2_block_bytes) {
        {
            __m512i ms[T];
            for (int t = 0; t < T; ++t) ms[t] = _mm512_setzero_si512();
            for (int s = 0; s < 8; ++s) {
                const __m512i mp = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + k_dec2_mn_at + 64 * s));
                for (int t = 0; t < T; ++t) ms[t] = _mm512_dpwssd_epi32(ms[t], mp, bcast4z(a[t][b].bsums + 2 * s));
            }
            const __m512 dmin = _mm512_load_ps(reinterpret_cast<const float*>(dec + k_dec2_d_at + 64));
            for (int t = 0; t < T; ++t)
                acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[t]), _mm512_mul_ps(dmin, _mm512_set1_ps(a[t][b].d)), acc[t]);
        }
        __m512i si[T];
        for (int t = 0; t < T; ++t) si[t] = _mm512_setzero_si512();
        for (int s = 0; s < 8; ++s) {
            __m512i sb[T];
            for (int t = 0; t < T; ++t) sb[t] = _mm512_setzero_si512();
            for (int k = 0; k < 8; ++k) {
                const __m512i w = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + 512 * s + 64 * k));
                for (int t = 0; t < T; ++t) sb[t] = _mm512_dpbusd_epi32(sb[t], w, bcast4z(a[t][b].qs + 32 * s + 4 * k));
            }
            const __m512i sc = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + k_dec2_sc_at + 64 * s));
            for (int t = 0; t < T; ++t) si[t] = _mm512_add_epi32(si[t], _mm512_mullo_epi32(sb[t], sc));
        }
        const __m512 d = _mm512_load_ps(reinterpret_cast<const float*>(dec + k_dec2_d_at));
        for (int t = 0; t < T; ++t)
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si[t]), _mm512_mul_ps(d, _mm512_set1_ps(a[t][b].d)), acc[t]);
    }
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

}  // namespace

namespace {
template <bool Q5>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile<decltype(width)::value, Q5>(g, a, nb, yt, y_stride);
    });
}

template <bool Q5>
void gemm_pair(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
               size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(groups);
    const int64_t nb = n_cols / QK_K;
    uint8_t* dec = packed_decode_scratch(size_t(nb) * k_dec2_block_bytes);
    if (!dec) {  // no scratch: the two groups one by one
        gemm<Q5>(g, act, act_stride, n_tokens, n_cols, y, y_stride);
        gemm<Q5>(g + size_t(nb) * (Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes), act, act_stride, n_tokens, n_cols, y + k_pack_rows, y_stride);
        return;
    }
    decode_pair<Q5>(g, g + size_t(nb) * (Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes), nb, dec);
    for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile_pair<decltype(width)::value>(dec, a, nb, yt, y_stride);
    });
}
}  // namespace

void packed_q4_k_gemm2_avx512(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                              float* y, size_t y_stride) {
    gemm_pair<false>(groups, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_k_gemm2_avx512(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                              float* y, size_t y_stride) {
    gemm_pair<true>(groups, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q4_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
