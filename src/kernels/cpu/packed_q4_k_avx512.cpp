// AVX-512 VNNI gemm over Q4_K x8 groups (packed_q4_k.cpp): as the AVX2 one, but vpdpbusd adds
// each 4-byte product sum straight into the row's i32 lane per sub-block, then one i32 multiply
// by the rows' scales. 8-token tiles (the 32 vector registers hold 16 sub-block sums).
// i32 bounds: a sub-block sum is at most 32 * 15 * 128 = 61440, times a scale <= 63, 8 summed.
// Q5_K (Q5 = true, same code): each nibble vector ORed with its fifth bit from the chunk's qh
// vector; sums at most 32 * 31 * 128 * 63 * 8 < 2^26.
//
// Prefill (n_tokens >= k_decoded_min_tokens): the group is first decoded once into a per-thread
// scratch of plain bytes (the nibbles with their fifth bits, and the scales widened), laid out
// for 512-bit vpdpbusd: per sub-block, 4 vectors whose qword r holds 8 consecutive weights of row
// r, met by one 8-byte broadcast of the activations. A token tile then costs one load per 64
// weight bytes (no unpacking per tile) and its 8 sub-block sums are 8 independent 512-bit chains
// (the 256-bit path has 8 chains of twice as many vpdpbusd, which the instruction's latency
// bounds). Row r's two dword lanes are added in i32 per block, so the block sums are the same
// integers as the per-tile path's and the results are bit for bit the same.
#pragma GCC target("avx512vnni")
// GCC 12's avx512fintrin.h self-initialises "undefined" vectors and warns about it at every use.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/packed_hbits_x86.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

inline __m256i bcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

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

// ---- Prefill: decode the group once, then 512-bit tiles over the decoded bytes ----

// Decoded block: 8 sub-blocks x 4 vectors of 64 bytes (qword r = weights 8m .. 8m + 7 of
// sub-block s of row r, one byte each), then 8 vectors of the sub-blocks' scales (dwords 2r and
// 2r + 1 = scale of row r).
constexpr size_t k_dec_w_bytes = 8 * 4 * 64;
constexpr size_t k_dec_block_bytes = k_dec_w_bytes + 8 * 64;
constexpr int64_t k_decoded_min_tokens = 16;

// Sub-block 2J + Hi: the low (Hi = 0) or high nibbles of the 8 chunks of pair J, two chunks per
// 512-bit load (chunks 2m, 2m + 1 are adjacent), then one dword permute puts row r's 4 + 4
// weights into qword r.
template <bool Q5, int J, int Hi>
inline void decode_sub_block(const uint8_t* g, uint8_t* out) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const uint8_t* q = g + k_q4_k_q_at + 256 * J;
    for (int m = 0; m < 4; ++m) {
        const __m512i w = _mm512_loadu_si512(q + 64 * m);
        __m512i v = _mm512_and_si512(Hi ? _mm512_srli_epi16(w, 4) : w, m4);
        if constexpr (Q5) {
            constexpr int P = 2 * J + Hi;  // bit P of each qh byte -> bit 4
            const __m512i h = _mm512_loadu_si512(g + k_q5_k_qh_at + 64 * m);
            const __m512i hb = P < 4 ? _mm512_slli_epi16(h, 4 - P) : _mm512_srli_epi16(h, P - 4);
            v = _mm512_or_si512(v, _mm512_and_si512(hb, _mm512_set1_epi8(0x10)));
        }
        _mm512_store_si512(reinterpret_cast<__m512i*>(out + 64 * m), _mm512_permutexvar_epi32(order, v));
    }
}

template <bool Q5>
void decode_group(const uint8_t* g, int64_t nb, uint8_t* dec) {
    constexpr size_t block_bytes = Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes;
    for (int64_t b = 0; b < nb; ++b, g += block_bytes, dec += k_dec_block_bytes) {
        decode_sub_block<Q5, 0, 0>(g, dec + 0 * 256);
        decode_sub_block<Q5, 0, 1>(g, dec + 1 * 256);
        decode_sub_block<Q5, 1, 0>(g, dec + 2 * 256);
        decode_sub_block<Q5, 1, 1>(g, dec + 3 * 256);
        decode_sub_block<Q5, 2, 0>(g, dec + 4 * 256);
        decode_sub_block<Q5, 2, 1>(g, dec + 5 * 256);
        decode_sub_block<Q5, 3, 0>(g, dec + 6 * 256);
        decode_sub_block<Q5, 3, 1>(g, dec + 7 * 256);
        for (int s = 0; s < 8; ++s) {
            const __m512i sc = _mm512_cvtepu32_epi64(row_i32(g + k_q4_k_scales_at + 8 * s));
            _mm512_store_si512(reinterpret_cast<__m512i*>(dec + k_dec_w_bytes + 64 * s), _mm512_or_si512(sc, _mm512_slli_epi64(sc, 32)));
        }
    }
}

// Row r's i32 sum: its two dword lanes added (modulo 2^32, exact as the sums fit in i32).
inline __m256i pair_sums(__m512i v) { return _mm512_cvtepi64_epi32(_mm512_add_epi64(v, _mm512_srli_epi64(v, 32))); }

inline __m512i bcast8(const void* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
}

// The same f32 operations on the same integer sums as gemm_tile, so the same results.
template <int T, bool Q5>
void gemm_tile_decoded(const uint8_t* g, const uint8_t* dec, const q8_k_block* const* a, int64_t nb, float* y,
                       size_t y_stride) {
    constexpr size_t block_bytes = Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes;
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += block_bytes, dec += k_dec_block_bytes) {
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
        __m512i si[T];
        for (int t = 0; t < T; ++t) si[t] = _mm512_setzero_si512();
        for (int s = 0; s < 8; ++s) {
            __m512i sb[T];
            for (int t = 0; t < T; ++t) sb[t] = _mm512_setzero_si512();
            for (int m = 0; m < 4; ++m) {
                const __m512i w = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + 256 * s + 64 * m));
                for (int t = 0; t < T; ++t) sb[t] = _mm512_dpbusd_epi32(sb[t], w, bcast8(a[t][b].qs + 32 * s + 8 * m));
            }
            const __m512i sc = _mm512_load_si512(reinterpret_cast<const __m512i*>(dec + k_dec_w_bytes + 64 * s));
            for (int t = 0; t < T; ++t) si[t] = _mm512_add_epi32(si[t], _mm512_mullo_epi32(sb[t], sc));
        }
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        for (int t = 0; t < T; ++t)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pair_sums(si[t])), _mm256_mul_ps(d8, _mm256_set1_ps(a[t][b].d)), acc[t]);
    }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

// Per-thread scratch for one decoded group (64-byte aligned, grown on demand, kept).
uint8_t* decode_scratch(size_t bytes) {
    struct buf {
        uint8_t* p = nullptr;
        size_t n = 0;
        ~buf() { std::free(p); }
    };
    thread_local buf b;
    if (b.n < bytes) {
        std::free(b.p);
        b.n = (bytes + 63) / 64 * 64;
        b.p = static_cast<uint8_t*>(std::aligned_alloc(64, b.n));
        if (!b.p) {
            b.n = 0;
            return nullptr;
        }
    }
    return b.p;
}

}  // namespace

namespace {
template <bool Q5>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    uint8_t* dec = n_tokens >= k_decoded_min_tokens ? decode_scratch(size_t(nb) * k_dec_block_bytes) : nullptr;
    if (dec) {
        decode_group<Q5>(g, nb, dec);
        for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
            gemm_tile_decoded<decltype(width)::value, Q5>(g, dec, a, nb, yt, y_stride);
        });
        return;
    }
    for_each_token_tile<8, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile<decltype(width)::value, Q5>(g, a, nb, yt, y_stride);
    });
}
}  // namespace

void packed_q4_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
