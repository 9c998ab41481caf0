// AVX2 gemms over Q4_0, Q5_0, Q4_1 and Q5_1 x8 groups (packed_q4_0.cpp, packed_q5_0.cpp,
// packed_q4_1.cpp): per block, 4 chunk loads unpack into the low and high nibbles of 8 rows (Q5_0,
// Q5_1: each ORed with its fifth bit from the block's qh vector); each token's 4-byte activation
// broadcasts meet them with maddubs. Q4_1 / Q5_1 add m * dy * sum(y) per block (the rows' mins
// times the activation block's integer sum) in f32, as the per-row dots (legacy_dots_x86.h) do.
// i16 bounds: Q4_0 and Q4_1 sum a whole block in i16 (16 products of q <= 15 and |a| <= 127 per
// lane, at most 30480); Q5_0 / Q5_1 (q <= 31) sum two chunks (8 products, at most 31496) before
// widening.
#include "kernels/cpu/bcast_x86.h"
#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_hbits_x86.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

// The four layouts sharing this code: Q4_0 x8 (144-byte blocks, q - 8), Q5_0 x8 (176 bytes,
// fifth bits from a qh vector after the nibbles, q - 16), Q4_1 x8 (160 bytes, d*q + m: f16 mins
// after the scales), Q5_1 x8 (192 bytes: Q4_1's scales, mins and nibbles, then Q5_0's qh vector).
enum class kind { q4_0, q5_0, q4_1, q5_1 };


template <int T, kind K>
void gemm_tile(const uint8_t* g, const act_q8_32* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr bool Q5 = K == kind::q5_0 || K == kind::q5_1, min = K == kind::q4_1 || K == kind::q5_1;
    constexpr size_t qs_at = min ? 32 : 16, qh_at = qs_at + 128;
    constexpr size_t block_bytes = qh_at + (Q5 ? 32 : 0);
    constexpr int offset = min ? 0 : Q5 ? -16 : -8;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        [[maybe_unused]] __m256 m8;
        if constexpr (min) m8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
        __m256i s16[T], s32[T];
        for (int t = 0; t < T; ++t) {
            s16[t] = _mm256_setzero_si256();
            s32[t] = _mm256_set1_epi32(offset * a[t][b].sum);
        }
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
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, bcast4(q + 4 * k)));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, bcast4(q + 16 + 4 * k)));
            }
            if constexpr (Q5 && k % 2 == 1) {
                for (int t = 0; t < T; ++t) {
                    s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], ones));
                    s16[t] = _mm256_setzero_si256();
                }
            }
        };
        chunk(std::integral_constant<int, 0>{});
        chunk(std::integral_constant<int, 1>{});
        chunk(std::integral_constant<int, 2>{});
        chunk(std::integral_constant<int, 3>{});
        for (int t = 0; t < T; ++t) {
            if constexpr (!Q5) s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], ones));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(d8, _mm256_set1_ps(a[t][b].d)), acc[t]);
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
    for_each_token_tile<4, act_q8_32>(act, act_stride, n_tokens, y, y_stride,
                                      [&](auto width, const act_q8_32* const* a, float* yt) {
                                          gemm_tile<decltype(width)::value, K>(g, a, nb, yt, y_stride);
                                      });
}

}  // namespace

void packed_q4_0_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q4_0>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_0_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q5_0>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q4_1_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q4_1>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_1_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<kind::q5_1>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
