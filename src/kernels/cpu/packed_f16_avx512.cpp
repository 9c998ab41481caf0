// AVX-512 gemms over F16 / BF16 x8 groups (packed_f16.cpp): a register tile of the group's 8 rows
// x up to 3 tokens (24 accumulators of 16 f32). Per 16 columns: each token's activations load
// once, each row's weights load and widen to f32 once (F16: vcvtph2ps; BF16: a 16-bit shift),
// and 8 * T FMAs follow, so the loop is bound by the FMAs rather than by loads as a
// one-row-at-a-time dot is. The columns past the last 32-block are read with masked loads.
#include <immintrin.h>

#include "kernels/cpu/packed_f16.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

template <bool BF16>
inline __m512 widen(__m256i v) {
    if constexpr (BF16) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
    } else {
        return _mm512_cvtph_ps(v);
    }
}

template <int T, bool BF16>
void gemm_tile(const uint8_t* g, const float* const* x, int64_t n_cols, float* y, size_t y_stride) {
    constexpr int R = k_pack_rows;
    __m512 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    const int64_t nb = n_cols / k_f16_block_cols;
    for (int64_t b = 0; b < nb; ++b, g += 2 * R * k_f16_block_cols) {
        for (int h = 0; h < 2; ++h) {
            const int64_t c = b * k_f16_block_cols + 16 * h;
            __m512 xv[T];
            for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(x[t] + c);
            for (int r = 0; r < R; ++r) {
                const __m512 w = widen<BF16>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 64 * r + 32 * h)));
                for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(w, xv[t], acc[r][t]);
            }
        }
    }
    const int64_t tail = n_cols % k_f16_block_cols;
    for (int64_t h = 0; 16 * h < tail; ++h) {
        const int n = int(std::min<int64_t>(16, tail - 16 * h));
        const __mmask16 m = __mmask16((1u << n) - 1);
        const int64_t c = nb * k_f16_block_cols + 16 * h;
        __m512 xv[T];
        for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x[t] + c);
        for (int r = 0; r < R; ++r) {
            const __m512 w = widen<BF16>(_mm256_maskz_loadu_epi16(m, g + 2 * (r * tail + 16 * h)));
            for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(w, xv[t], acc[r][t]);
        }
    }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < R; ++r) y[size_t(t) * y_stride + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <bool BF16>
void gemm(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols, float* y,
          size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    for_each_token_tile<3, float>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const float* const* x, float* yt) {
        gemm_tile<decltype(width)::value, BF16>(g, x, n_cols, yt, y_stride);
    });
}

}  // namespace

void packed_f16_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                            float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_bf16_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
