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

#if defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace edgellm::kernels::cpu {
namespace {

constexpr int64_t k_fa_tile = 64;  // key rows per tile
constexpr int k_fa_block = 16;     // output elements per p.V block (one AVX-512 vector)

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
                    for (int64_t j = j_lo; j < jn; ++j) {
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
                    // p . V by blocks of k_fa_block output elements held in registers over the keys.
                    int64_t d0 = 0;
                    for (; d0 + k_fa_block <= head_dim; d0 += k_fa_block) {
                        float o[k_fa_block];
                        for (int dd = 0; dd < k_fa_block; ++dd) o[dd] = a[d0 + dd];
                        for (int64_t j = j_lo; j < jn; ++j) {
                            const float p = s[j];
                            const float* vr = vt + j * head_dim + d0;
#pragma omp simd
                            for (int dd = 0; dd < k_fa_block; ++dd) o[dd] += p * vr[dd];
                        }
                        for (int dd = 0; dd < k_fa_block; ++dd) a[d0 + dd] = o[dd];
                    }
                    for (int64_t j = j_lo; j < jn && d0 < head_dim; ++j) {
                        const float p = s[j];
                        const float* vr = vt + j * head_dim;
                        for (int64_t d = d0; d < head_dim; ++d) a[d] += p * vr[d];
                    }
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
