// BF16 weight rows on CPUs with AVX-512 BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later):
// vdpbf16ps multiplies 32 bf16 pairs and accumulates into 16 f32 lanes in one instruction. The
// activations are split once per row into hi = bf16(x) and lo = bf16(x - hi) (act_format::
// bf16_pair), so each 32 weights cost one 64-byte load and two dot instructions, and the product
// keeps f32 activations to about 2^-17 of each term (ggml rounds the activations to bf16, 2^-9).
// The AVX-512 table uses it for prefill (mul_mat_batch_for); see ops_avx512.cpp for why not decode.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu::avx512_bf16 {
namespace {

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// The 32 bf16 of v widened to f32: lanes 0..15 and 16..31.
inline __m512 widen_lo(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16)); }
inline __m512 widen_hi(__m512i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
}

inline __mmask32 tail_mask(int64_t r) { return r >= 32 ? ~__mmask32(0) : (__mmask32(1) << r) - 1; }

// T activation rows (stride a_stride bytes) against one weight row: y[t * y_stride].
template <int T>
void dot_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const uint8_t* a[T];
    for (int t = 0; t < T; ++t) a[t] = static_cast<const uint8_t*>(av) + size_t(t) * a_stride;
    __m512 acc_hi[T], acc_lo[T];
    for (int t = 0; t < T; ++t) acc_hi[t] = _mm512_setzero_ps(), acc_lo[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 32) {
        // The last chunk loads only the row's remaining weights; the activation chunk is zero-padded.
        const __m512i wi = i + 32 <= n ? _mm512_loadu_si512(w + i) : _mm512_maskz_loadu_epi16(tail_mask(n - i), w + i);
        const size_t off = size_t(i / 32) * k_bf16_pair_chunk_bytes;
        for (int t = 0; t < T; ++t) {
            acc_hi[t] = _mm512_dpbf16_ps(acc_hi[t], as_bh(wi), as_bh(_mm512_loadu_si512(a[t] + off)));
            acc_lo[t] = _mm512_dpbf16_ps(acc_lo[t], as_bh(wi), as_bh(_mm512_loadu_si512(a[t] + off + 64)));
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = _mm512_reduce_add_ps(_mm512_add_ps(acc_hi[t], acc_lo[t]));
}

// One token: two chunks per step into four accumulators (vdpbf16ps's latency would otherwise
// bound the loop: with one chain per half it ran slower than the F16 FMA loop).
float dot_1(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const uint16_t*>(wv);
    const auto* a = static_cast<const uint8_t*>(av);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64, a += 2 * k_bf16_pair_chunk_bytes) {
        const __m512i w0 = _mm512_loadu_si512(w + i), w1 = _mm512_loadu_si512(w + i + 32);
        acc[0] = _mm512_dpbf16_ps(acc[0], as_bh(w0), as_bh(_mm512_loadu_si512(a)));
        acc[1] = _mm512_dpbf16_ps(acc[1], as_bh(w0), as_bh(_mm512_loadu_si512(a + 64)));
        acc[2] = _mm512_dpbf16_ps(acc[2], as_bh(w1), as_bh(_mm512_loadu_si512(a + 128)));
        acc[3] = _mm512_dpbf16_ps(acc[3], as_bh(w1), as_bh(_mm512_loadu_si512(a + 192)));
    }
    for (; i < n; i += 32, a += k_bf16_pair_chunk_bytes) {
        const __m512i wi = i + 32 <= n ? _mm512_loadu_si512(w + i) : _mm512_maskz_loadu_epi16(tail_mask(n - i), w + i);
        acc[0] = _mm512_dpbf16_ps(acc[0], as_bh(wi), as_bh(_mm512_loadu_si512(a)));
        acc[1] = _mm512_dpbf16_ps(acc[1], as_bh(wi), as_bh(_mm512_loadu_si512(a + 64)));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

}  // namespace

bool supported() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
}

void quantize_pair(const float* x, void* dst, int64_t n) {
    auto* out = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; i += 32, out += k_bf16_pair_chunk_bytes) {
        const int64_t r = std::min<int64_t>(32, n - i);
        const __mmask32 m = tail_mask(r);
        const __m512 x0 = _mm512_maskz_loadu_ps(__mmask16(m), x + i);
        const __m512 x1 = _mm512_maskz_loadu_ps(__mmask16(m >> 16), x + i + 16);
        const __m512bh hb = _mm512_cvtne2ps_pbh(x1, x0);  // round to nearest even; lanes 0..15 from x0
        const __m512i hi = reinterpret_cast<const __m512i&>(hb);
        const __m512bh lb = _mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, widen_hi(hi)), _mm512_sub_ps(x0, widen_lo(hi)));
        _mm512_storeu_si512(out, hi);
        _mm512_storeu_si512(out + 64, reinterpret_cast<const __m512i&>(lb));
    }
}

mul_mat_kernel kernel() { return {act_format::bf16_pair, dot_1, {nullptr, dot_n<2>, dot_n<3>, dot_n<4>}}; }

}  // namespace edgellm::kernels::cpu::avx512_bf16
