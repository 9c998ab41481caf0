// AVX2 + F16C gemms over F16 / BF16 x8 groups (packed_f16.cpp), for CPUs without AVX-512: a
// register tile as the AVX-512 one (packed_f16_avx512.cpp) at 256 bits. AVX2 has 16 vector
// registers, so the tile is the group's 8 rows x 1 token (8 accumulators of 8 f32), or 4 rows x
// 2..3 tokens (up to 12 accumulators) walked twice over the group, once per half of its rows.
// Per 8 columns: each token's activations load once, each row's weights load and widen to f32
// once (F16: vcvtph2ps; BF16: zero-extend and a 16-bit shift), then rows x tokens FMAs. The
// columns past the last 32-block are copied into zero-padded scratch and run through the same
// step (AVX2 has no masked 16-bit load).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/packed_f16.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

template <bool BF16>
inline __m256 widen(const uint8_t* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (BF16) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
    } else {
        return _mm256_cvtph_ps(v);
    }
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// acc[r][t] += row r x token t over 32 columns: row r's weights at w + row_stride * r (2-byte
// elements), token t's activations at x[t] + c.
template <int NR, int T, bool BF16>
inline void block_step(const uint8_t* w, size_t row_stride, const float* const* x, int64_t c, __m256 (&acc)[NR][T]) {
    for (int q = 0; q < 4; ++q) {
        __m256 xv[T];
        for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x[t] + c + 8 * q);
        for (int r = 0; r < NR; ++r) {
            const __m256 wv = widen<BF16>(w + row_stride * size_t(r) + 16 * q);
            for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
}

// Rows [R0, R0 + NR) of the group x T tokens.
template <int R0, int NR, int T, bool BF16>
void gemm_rows(const uint8_t* g, const float* const* x, int64_t n_cols, float* y, size_t y_stride) {
    __m256 acc[NR][T];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    const int64_t nb = n_cols / k_f16_block_cols;
    constexpr size_t block_bytes = 2 * k_pack_rows * k_f16_block_cols;
    for (int64_t b = 0; b < nb; ++b) block_step<NR, T, BF16>(g + size_t(b) * block_bytes + 64 * R0, 64, x, b * k_f16_block_cols, acc);
    if (const int64_t tail = n_cols % k_f16_block_cols) {
        // Row r's last `tail` weights lie at 2 * r * tail past the blocks; pad both sides to 32
        // columns with zeros.
        alignas(32) uint8_t wpad[NR][64] = {};
        alignas(32) float xpad[T][k_f16_block_cols] = {};
        const uint8_t* gt = g + size_t(nb) * block_bytes;
        for (int r = 0; r < NR; ++r) std::memcpy(wpad[r], gt + 2 * size_t(R0 + r) * size_t(tail), size_t(2 * tail));
        const float* xp[T];
        for (int t = 0; t < T; ++t) {
            std::memcpy(xpad[t], x[t] + nb * k_f16_block_cols, size_t(tail) * sizeof(float));
            xp[t] = xpad[t];
        }
        block_step<NR, T, BF16>(&wpad[0][0], 64, xp, 0, acc);
    }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < NR; ++r) y[size_t(t) * y_stride + R0 + r] = hsum(acc[r][t]);
}

template <int T, bool BF16>
void gemm_tile(const uint8_t* g, const float* const* x, int64_t n_cols, float* y, size_t y_stride) {
    if constexpr (T == 1) {
        gemm_rows<0, 8, 1, BF16>(g, x, n_cols, y, y_stride);
    } else {
        gemm_rows<0, 4, T, BF16>(g, x, n_cols, y, y_stride);
        gemm_rows<4, 4, T, BF16>(g, x, n_cols, y, y_stride);
    }
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

void packed_f16_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                          float* y, size_t y_stride) {
    gemm<false>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

void packed_bf16_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    gemm<true>(group, act, act_stride, n_tokens, n_cols, y, y_stride);
}

}  // namespace edgellm::kernels::cpu
