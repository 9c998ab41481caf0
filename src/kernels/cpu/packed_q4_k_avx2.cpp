// AVX2 gemm over Q4_K x8 groups (packed_q4_k.cpp). Per sub-block (32 elements), 8 chunk loads
// masked to their low (sub-block 2j) or high (2j + 1) nibbles; maddubs with each
// token's 4-byte activation broadcast, summed in i16 over the 32 elements of a sub-block, then
// one madd with the rows' scales (each row's scale in both i16 lanes 2r, 2r + 1) adds into one
// i32 lane per row. The mins term is madd of the rows' mins with the activations' bsums pairs.
// i16 bounds: a maddubs lane is 2 products of q <= 15 and |a| <= 128, at most 3840; 8 summed
// stay within 30720 < 32767. i32: 8 sub-blocks of |32 * 15 * 128 * 63| < 2^25 each.
// Q5_K (Q5 = true, same code): each nibble vector ORed with its fifth bit from the chunk's qh
// vector (q <= 31, a maddubs lane at most 7936), so a sub-block is summed in i16 as two halves
// of 4 chunks (31744) that each take their own madd with the scales.
#include "kernels/cpu/bcast_x86.h"
#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/packed_hbits_x86.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {


// 8 unsigned bytes (one per row) -> each row's value in both i16 lanes of its i32 lane.
inline __m256i row_pairs(const uint8_t* p) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}

template <int T, bool Q5>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    constexpr size_t block_bytes = Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += block_bytes) {
        // Mins: sum over sub-blocks s of min[s] * (bsums[2s] + bsums[2s + 1]), folded into acc at
        // once so that only acc, si and one sub-block sum per token stay live below (keeping lo
        // and hi sums and the mins live as well spilled to the stack).
        {
            const __m256 dmin8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + 16)));
            __m256i ms[T];
            for (int t = 0; t < T; ++t) ms[t] = _mm256_setzero_si256();
            for (int s = 0; s < 8; ++s) {
                const __m256i m = row_pairs(g + k_q4_k_mins_at + 8 * s);
                for (int t = 0; t < T; ++t) ms[t] = _mm256_add_epi32(ms[t], _mm256_madd_epi16(m, bcast4(a[t][b].bsums + 2 * s)));
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
            const __m256i sc = row_pairs(g + k_q4_k_scales_at + 8 * (2 * j + hi));
            __m256i s16[T];
            for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
            for (int c = 0; c < 8; ++c) {
                const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
                __m256i v = _mm256_and_si256(hi ? _mm256_srli_epi16(w, 4) : w, m4);
                if constexpr (Q5)
                    v = _mm256_or_si256(v, hbit4<2 * j + hi>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + k_q5_k_qh_at + 32 * c))));
                for (int t = 0; t < T; ++t)
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(v, bcast4(a[t][b].qs + 64 * j + 32 * hi + 4 * c)));
                if (Q5 ? c % 4 == 3 : c == 7) {
                    for (int t = 0; t < T; ++t) {
                        si[t] = _mm256_add_epi32(si[t], _mm256_madd_epi16(s16[t], sc));
                        s16[t] = _mm256_setzero_si256();
                    }
                }
            }
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

}  // namespace

namespace {
template <bool Q5>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<4, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile<decltype(width)::value, Q5>(g, a, nb, yt, y_stride);
    });
}
}  // namespace

void packed_q4_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_q5_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
