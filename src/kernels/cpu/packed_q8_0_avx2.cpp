// AVX2 gemm over Q8_0 x8 groups (packed_q8_0.cpp). A 256-bit load holds 8 weights of 4 rows (two
// i32 lanes per row); maddubs wants an unsigned first operand, so |w| = sign(w, w) is made once
// and shared by the tokens, and each token's 8-byte activation broadcast takes w's sign instead.
// Bounds: |w| <= 128 (-128 is legal in a GGUF), |a| <= 127 (the quantizer never makes -128), so
// one maddubs pair is at most 2*128*127 = 32512 < 32767; two pairs could saturate, so every
// maddubs widens to i32 with madd(ones) before it is summed.

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/packed_q8_0.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

inline __m256i bcast8(const int8_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
}

// The sums of the two lanes of each row, in the lane order hadd leaves them: rows 0 1 4 5 2 3 6 7.
inline __m256i row_sums(__m256i lo, __m256i hi) { return _mm256_hadd_epi32(lo, hi); }

template <int T>
void gemm_tile(const uint8_t* g, const act_q8_32* const* a, int64_t nb, float* y, size_t y_stride) {
    const __m256i ones = _mm256_set1_epi16(1);
    // The 8 rows' scales in row_sums' lane order.
    const __m256i d_order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, g += k_q8_0_group_block_bytes) {
        const __m256 d8 = _mm256_permutevar8x32_ps(
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g))), d_order);
        __m256i s_lo[T], s_hi[T];
        for (int t = 0; t < T; ++t) s_lo[t] = s_hi[t] = _mm256_setzero_si256();
        for (int m = 0; m < 4; ++m) {
            const __m256i w_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16 + 64 * m));
            const __m256i w_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16 + 64 * m + 32));
            const __m256i u_lo = _mm256_sign_epi8(w_lo, w_lo);
            const __m256i u_hi = _mm256_sign_epi8(w_hi, w_hi);
            for (int t = 0; t < T; ++t) {
                const __m256i q = bcast8(a[t][b].qs + 8 * m);
                const __m256i p_lo = _mm256_maddubs_epi16(u_lo, _mm256_sign_epi8(q, w_lo));
                const __m256i p_hi = _mm256_maddubs_epi16(u_hi, _mm256_sign_epi8(q, w_hi));
                s_lo[t] = _mm256_add_epi32(s_lo[t], _mm256_madd_epi16(p_lo, ones));
                s_hi[t] = _mm256_add_epi32(s_hi[t], _mm256_madd_epi16(p_hi, ones));
            }
        }
        for (int t = 0; t < T; ++t)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(row_sums(s_lo[t], s_hi[t])),
                                     _mm256_mul_ps(d8, _mm256_set1_ps(a[t][b].d)), acc[t]);
    }
    for (int t = 0; t < T; ++t)
        _mm256_storeu_ps(y + size_t(t) * y_stride, _mm256_permutevar8x32_ps(acc[t], d_order));
}

}  // namespace

void packed_q8_0_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK8_0;
    for_each_token_tile<3, act_q8_32>(act, act_stride, n_tokens, y, y_stride,
                                  [&](auto width, const act_q8_32* const* a, float* yt) {
                                      gemm_tile<decltype(width)::value>(g, a, nb, yt, y_stride);
                                  });
}

}  // namespace edgellm::kernels::cpu
