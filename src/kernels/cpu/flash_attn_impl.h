// Flash-style attention (FlashAttention-2's online softmax, tiled over the keys) for the CPU.
// Plain loops written for the compiler's vectorizer: this header is included by one .cpp per ISA
// (flash_attn.cpp, flash_attn_avx2.cpp, flash_attn_avx512.cpp, flash_attn_neon.cpp), each compiled
// with its own flags, and everything here has internal linkage so the copies never mix.
//
// For one KV head, all query vectors that read it (n_q tokens x the GQA group) walk the keys in
// tiles of k_fa_tile rows: a tile of K and V is converted to f32 once and then serves every query
// vector, and each query keeps a running max m, a running sum l and an unnormalised output, so no
// score buffer over the whole context is needed. The result equals softmax(q K^T * scale) V of
// kernels::ref::attention up to float rounding (tests/kernels/flash_attention_test.cpp).
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"

#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace edgellm::kernels::cpu {
namespace {

constexpr int64_t k_fa_tile = 64;  // key rows per tile

// e^x for x <= 0 (the softmax's s - max), same scheme as the SIMD exp of ops_avx2.cpp: x = k ln2 + r,
// a degree-6 polynomial for e^r, 2^k in the exponent bits. Branch-free so loops over it vectorize.
inline float fa_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const auto e = static_cast<uint32_t>(static_cast<int32_t>(kf) + 127) << 23;
    return p * std::bit_cast<float>(e);
}

// Elements [first, first + n) of one KV row as f32.
inline void fa_load_row(const void* row, ggml_type t, int64_t first, int64_t n, float* dst) {
    if (t == ggml_type::f16) {
        const auto* r = static_cast<const uint16_t*>(row) + first;
        int64_t i = 0;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + i))));
#elif defined(__aarch64__)
        for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(r + i))));
#endif
        for (; i < n; ++i) dst[i] = fp16_to_fp32(r[i]);
        return;
    }
    // f32 copies; q8_0 / q4_0 dequantize whole blocks (the reference's own slice function).
    ref::kv_head_slice(row, t, first, n, dst);
}

inline float fa_dot(const float* a, const float* b, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

#if defined(__AVX512F__)
inline bool fa_wide(int64_t head_dim) { return head_dim % 64 == 0; }
// s[r] = q . k_r for the 4 rows k_r = k + r * head_dim: four independent accumulator chains (one
// dot's chain of FMAs is latency-bound) sharing each load of q. Each row's sum is formed exactly as
// GCC 12 vectorizes fa_dot for AVX-512 (one 16-lane FMA chain over d, then lane 0 + lane 1 + ... +
// lane 15 in order, read from its disassembly), so the scores, and SmolLM2's and Gemma 3's logits,
// are bit-identical to the plain loop's (checked with engine_logits); a tree-order reduction here
// moved the real models' top-1 agreement with llama.cpp by +-1 point by summation order alone. The
// four rows' lane sums run side by side in one 128-bit vector after a 4 x 16 transpose.
inline void fa_dot4(const float* q, const float* k, int64_t head_dim, float* s) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < head_dim; d += 16) {
        const __m512 qv = _mm512_loadu_ps(q + d);
        a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + d), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + head_dim + d), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + 2 * head_dim + d), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k + 3 * head_dim + d), a3);
    }
    // 4 x 4 transposes within each 128-bit lane: t_c's lane j holds (a0, a1, a2, a3)[4 j + c].
    const __m512 u0 = _mm512_unpacklo_ps(a0, a1), u1 = _mm512_unpackhi_ps(a0, a1);
    const __m512 u2 = _mm512_unpacklo_ps(a2, a3), u3 = _mm512_unpackhi_ps(a2, a3);
    const __m512 t[4] = {
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2))),
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)))};
    __m128 sum = _mm_setzero_ps();
    for (int c = 0; c < 4; ++c) sum = _mm_add_ps(sum, _mm512_castps512_ps128(t[c]));
    for (int c = 0; c < 4; ++c) sum = _mm_add_ps(sum, _mm512_extractf32x4_ps(t[c], 1));
    for (int c = 0; c < 4; ++c) sum = _mm_add_ps(sum, _mm512_extractf32x4_ps(t[c], 2));
    for (int c = 0; c < 4; ++c) sum = _mm_add_ps(sum, _mm512_extractf32x4_ps(t[c], 3));
    _mm_storeu_ps(s, sum);
}
#endif
// a[d] += s[j] * V[j][d] for j in [j_lo, jn): per 64 columns, the sums stay in registers across
// the keys (updating a[] in memory per key chained every key's FMA through a store and a reload).
// The same operations in the same order per element as the plain loop, so the same results.
inline void fa_accumulate_pv(float* a, const float* s, const float* vt, int64_t j_lo, int64_t jn, int64_t head_dim) {
    constexpr int64_t C = 64;
    int64_t d0 = 0;
    for (; d0 + C <= head_dim; d0 += C) {
        float t[C];
        for (int64_t d = 0; d < C; ++d) t[d] = a[d0 + d];
        for (int64_t j = j_lo; j < jn; ++j) {
            const float p = s[j];
            const float* vr = vt + j * head_dim + d0;
#pragma omp simd
            for (int64_t d = 0; d < C; ++d) t[d] += p * vr[d];
        }
        for (int64_t d = 0; d < C; ++d) a[d0 + d] = t[d];
    }
    if (d0 == head_dim) return;
    for (int64_t j = j_lo; j < jn; ++j) {
        const float p = s[j];
        const float* vr = vt + j * head_dim;
#pragma omp simd
        for (int64_t d = d0; d < head_dim; ++d) a[d] += p * vr[d];
    }
}

// Query i sees rows first(i) .. n_kv[i]-1 (first = kv_first[i], or 0 when kv_first is null); when
// softcap > 0 every scaled score s becomes softcap * tanh(s / softcap) (Gemma 2).
void flash_attention_impl(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* kv_first,
                          const int64_t* n_kv, int64_t n_q, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                          float scale, float softcap, float* out, int64_t out_stride) {
    const ggml_type t = kv.type;
    if (t != ggml_type::f32 && t != ggml_type::f16 && t != ggml_type::q8_0 && t != ggml_type::q4_0)
        throw error("flash attention: KV cache type must be F32, F16, Q8_0 or Q4_0");
    if (n_head_kv <= 0 || n_head % n_head_kv != 0)
        throw error("flash attention: n_head must be a multiple of n_head_kv");
    if (n_q <= 0 || head_dim <= 0) return;
    const int64_t group = n_head / n_head_kv;
    const int64_t n_vec = n_q * group;  // query vectors per KV head
    int64_t max_kv = 0, min_first = std::numeric_limits<int64_t>::max();
    for (int64_t i = 0; i < n_q; ++i) {
        const int64_t first = kv_first ? kv_first[i] : 0;
        if (first < 0 || n_kv[i] <= first) throw error("flash attention: every query must see at least one key");
        max_kv = std::max(max_kv, n_kv[i]);
        min_first = std::min(min_first, first);
    }

    // Per-thread scratch: K and V tiles, one tile of scores, and per query vector its output
    // accumulator, running max and running sum.
    thread_local std::vector<float> buf;
    const size_t tile = static_cast<size_t>(k_fa_tile * head_dim);
    const size_t need = 2 * tile + static_cast<size_t>(k_fa_tile) + static_cast<size_t>(n_vec * (head_dim + 2));
    if (buf.size() < need) buf.resize(need);
    float* kt = buf.data();
    float* vt = kt + tile;
    float* s = vt + tile;
    float* acc = s + k_fa_tile;
    float* m = acc + n_vec * head_dim;
    float* l = m + n_vec;

    for (int64_t g = 0; g < n_head_kv; ++g) {
        std::fill(acc, acc + n_vec * head_dim, 0.0f);
        std::fill(m, m + n_vec, -std::numeric_limits<float>::infinity());
        std::fill(l, l + n_vec, 0.0f);
        for (int64_t j0 = min_first; j0 < max_kv; j0 += k_fa_tile) {
            const int64_t nt = std::min(k_fa_tile, max_kv - j0);
            for (int64_t j = 0; j < nt; ++j) {
                fa_load_row(kv.k_row(j0 + j), t, g * head_dim, head_dim, kt + j * head_dim);
                fa_load_row(kv.v_row(j0 + j), t, g * head_dim, head_dim, vt + j * head_dim);
            }
            for (int64_t i = 0; i < n_q; ++i) {
                // This query's rows of the tile: [j_lo, jn) relative to j0.
                const int64_t j_lo = kv_first ? std::max<int64_t>(0, kv_first[i] - j0) : 0;
                if (n_kv[i] <= j0 || j_lo >= nt) continue;
                const int64_t jn = std::min(nt, n_kv[i] - j0);
                for (int64_t hh = 0; hh < group; ++hh) {
                    const int64_t vec = i * group + hh;
                    const float* qv = q + i * q_stride + (g * group + hh) * head_dim;
                    float tmax = -std::numeric_limits<float>::infinity();
                    int64_t j = j_lo;
#if defined(__AVX512F__)
                    if (fa_wide(head_dim)) {
                        for (; j + 4 <= jn; j += 4) fa_dot4(qv, kt + j * head_dim, head_dim, s + j);
                        for (; j < jn; ++j) s[j] = fa_dot(qv, kt + j * head_dim, head_dim);
                        for (j = j_lo; j < jn; ++j) {
                            float sc = s[j] * scale;
                            if (softcap > 0.0f) sc = softcap * std::tanh(sc / softcap);
                            s[j] = sc;
                            tmax = std::max(tmax, sc);
                        }
                    }
#endif
                    for (; j < jn; ++j) {
                        float sc = fa_dot(qv, kt + j * head_dim, head_dim) * scale;
                        if (softcap > 0.0f) sc = softcap * std::tanh(sc / softcap);
                        s[j] = sc;
                        tmax = std::max(tmax, sc);
                    }
                    const float m_new = std::max(m[vec], tmax);
                    float* a = acc + vec * head_dim;
                    if (m_new > m[vec]) {
                        // The running max moved: earlier terms shrink by e^(m_old - m_new).
                        const float c = fa_exp(m[vec] - m_new);
                        l[vec] *= c;
#pragma omp simd
                        for (int64_t d = 0; d < head_dim; ++d) a[d] *= c;
                        m[vec] = m_new;
                    }
                    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                    for (int64_t j = j_lo; j < jn; ++j) {
                        s[j] = fa_exp(s[j] - m_new);
                        sum += s[j];
                    }
                    l[vec] += sum;
                    fa_accumulate_pv(a, s, vt, j_lo, jn, head_dim);
                }
            }
        }
        for (int64_t i = 0; i < n_q; ++i) {
            for (int64_t hh = 0; hh < group; ++hh) {
                const int64_t vec = i * group + hh;
                const float inv = 1.0f / l[vec];
                const float* a = acc + vec * head_dim;
                float* o = out + i * out_stride + (g * group + hh) * head_dim;
                for (int64_t d = 0; d < head_dim; ++d) o[d] = a[d] * inv;
            }
        }
    }
}

}  // namespace
}  // namespace edgellm::kernels::cpu
