// AVX-512 VNNI gemms over Q4_0, Q5_0, Q4_1 and Q5_1 x8 groups (packed_q4_0.cpp, packed_q5_0.cpp,
// packed_q4_1.cpp): as the AVX2 ones, but vpdpbusd adds each 4-byte product sum straight into the
// row's i32 lane, seeded with the -8 * sum(a) (Q5_0: -16 * sum(a); Q4_1, Q5_1: no offset)
// correction, so Q5 needs no widening steps. The Q4_1 / Q5_1 min term m * da * sum(a) is added in f32.
#pragma GCC target("avx512vnni")
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_hbits_x86.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

// The four layouts sharing this code: Q4_0 x8 (144-byte blocks, q - 8), Q5_0 x8 (176 bytes,
// fifth bits from a qh vector after the nibbles, q - 16), Q4_1 x8 (160 bytes, d*q + m: f16 mins
// after the scales), Q5_1 x8 (192 bytes: Q4_1's scales, mins and nibbles, then Q5_0's qh vector).
enum class kind { q4_0, q5_0, q4_1, q5_1 };

// Decode batches (2..8 tokens): the tile prefetches the weights this far ahead (past the group's
// end into the next group, which the same thread takes next: mul_mat_packed hands out contiguous
// group ranges). Their dot work hides less of the DRAM latency than a 1-token pass, and the
// hardware prefetchers alone left the 4-token step short of both bounds; 2, 4 and 8 KiB measured
// alike (TinyLlama Q4_0, 4 sequences: ~+8% tok/s), 1 KiB did not help.
constexpr size_t k_prefetch_bytes = 4096;

// s + dpbusd(w, the 4 bytes at p in every lane), the bytes read by the instruction's embedded
// broadcast: GCC 12 does not fold _mm256_set1_epi32(load) into vpdpbusd, and the separate
// vpbroadcastd per dot held the 4-token tile to ~60% of the dot throughput.
inline __m256i dpbusd_bcast(__m256i s, __m256i w, const int8_t* p) {
    asm("vpdpbusd %2%{1to8%}, %1, %0" : "+v"(s) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(p)));
    return s;
}

template <int T, kind K, bool prefetch>
void gemm_tile(const uint8_t* g, const act_q8_32* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr bool Q5 = K == kind::q5_0 || K == kind::q5_1, min = K == kind::q4_1 || K == kind::q5_1;
    constexpr size_t qs_at = min ? 32 : 16, qh_at = qs_at + 128;
    constexpr size_t block_bytes = qh_at + (Q5 ? 32 : 0);
    constexpr int offset = min ? 0 : Q5 ? -16 : -8;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        if constexpr (prefetch) {
            // A block spans at most 3 cache lines (192 bytes, Q5_1).
            _mm_prefetch(reinterpret_cast<const char*>(g + k_prefetch_bytes), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(g + k_prefetch_bytes + 64), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(g + k_prefetch_bytes + 128), _MM_HINT_T0);
        }
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        [[maybe_unused]] __m256 m8;
        if constexpr (min) m8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
        __m256i s[T];
        for (int t = 0; t < T; ++t) s[t] = _mm256_set1_epi32(offset * a[t][b].sum);
        [[maybe_unused]] __m256i qh;
        if constexpr (Q5) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + qh_at));
        auto chunk = [&](auto kc) {
            constexpr int k = decltype(kc)::value;
            const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + qs_at + 32 * k));
            __m256i lo = _mm256_and_si256(c, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), m4);
            if constexpr (Q5) {
                lo = _mm256_or_si256(lo, hbit4<2 * k>(qh));
                hi = _mm256_or_si256(hi, hbit4<2 * k + 1>(qh));
            }
            for (int t = 0; t < T; ++t) {
                const int8_t* q = a[t][b].qs;
                s[t] = dpbusd_bcast(s[t], lo, q + 4 * k);
                s[t] = dpbusd_bcast(s[t], hi, q + 16 + 4 * k);
            }
        };
        chunk(std::integral_constant<int, 0>{});
        chunk(std::integral_constant<int, 1>{});
        chunk(std::integral_constant<int, 2>{});
        chunk(std::integral_constant<int, 3>{});
        for (int t = 0; t < T; ++t) {
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), _mm256_mul_ps(d8, _mm256_set1_ps(a[t][b].d)), acc[t]);
            if constexpr (min) acc[t] = _mm256_fmadd_ps(m8, _mm256_set1_ps(a[t][b].d * float(a[t][b].sum)), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + size_t(t) * y_stride, acc[t]);
}

template <kind K>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / 32;
    // Decode batches prefetch (k_prefetch_bytes); one token (bandwidth-bound already) and prefill
    // (each group reused from cache by every tile) do not.
    const bool batch = n_tokens > 1 && n_tokens <= 8;
    for_each_token_tile<8, act_q8_32>(act, act_stride, n_tokens, y, y_stride,
                                      [&](auto width, const act_q8_32* const* a, float* yt) {
                                          constexpr int T = decltype(width)::value;
                                          if (T > 1 && batch)
                                              gemm_tile<T, K, true>(g, a, nb, yt, y_stride);
                                          else
                                              gemm_tile<T, K, false>(g, a, nb, yt, y_stride);
                                      });
}

}  // namespace

void packed_q4_0_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<kind::q4_0>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_0_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<kind::q5_0>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q4_1_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<kind::q4_1>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_1_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<kind::q5_1>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
