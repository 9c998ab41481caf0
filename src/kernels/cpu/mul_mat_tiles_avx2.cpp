// AVX2 multi-token dot products for prefill: one weight row against T (2..4) activation rows at
// once, so each weight block is loaded and unpacked once and reused from registers T times
// (the single-token dots in mul_mat_avx2.cpp unpack it again for every token).
#include <cstring>
#include <type_traits>

#include "kernels/cpu/avx2_util.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu::avx2_detail {
namespace {

template <class A, int T>
inline void act_rows(const void* av, size_t stride, const A* (&a)[T]) {
    for (int t = 0; t < T; ++t) a[t] = reinterpret_cast<const A*>(static_cast<const uint8_t*>(av) + size_t(t) * stride);
}

// Per-pair scale vectors from 16 small scales held as bytes s[0..15] in both 128-bit lanes:
// pair_scales(s2, k) has s[2k] in the eight int16 of the low lane and s[2k+1] in the high lane
// (the order maddubs/madd products of a 32-byte chunk come in), sign-extended when Signed.
template <bool Signed>
inline __m256i pair_scales(__m256i s2, int k) {
    const __m256i ctrl = _mm256_setr_m128i(_mm_set1_epi8(char(2 * k)), _mm_set1_epi8(char(2 * k + 1)));
    const __m256i r = _mm256_shuffle_epi8(s2, ctrl);  // each int16 is (s << 8) | s
    return Signed ? _mm256_srai_epi16(r, 8) : _mm256_srli_epi16(r, 8);
}

// The 16 6-bit Q3_K scales minus 32, as int8 in a 128-bit register (quant.h's q3_k_scales,
// in registers).
inline __m128i q3_k_scales_v(const uint8_t* packed) {
    constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[3];
    std::memcpy(aux, packed, sizeof(aux));
    const uint32_t s0 = (aux[0] & kmask2) | (((aux[2] >> 0) & kmask1) << 4);
    const uint32_t s1 = (aux[1] & kmask2) | (((aux[2] >> 2) & kmask1) << 4);
    const uint32_t s2 = ((aux[0] >> 4) & kmask2) | (((aux[2] >> 4) & kmask1) << 4);
    const uint32_t s3 = ((aux[1] >> 4) & kmask2) | (((aux[2] >> 6) & kmask1) << 4);
    return _mm_sub_epi8(_mm_setr_epi32(int(s0), int(s1), int(s2), int(s3)), _mm_set1_epi8(32));
}

template <int T>
void dot_q4_0_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q4_0_block*>(wv);
    const act_q8_32* a[T];
    act_rows(av, a_stride, a);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; ++b) {
        const float d = f16(w[b].d);
        const __m256i q = unpack_nibbles(w[b].qs);
        for (int t = 0; t < T; ++t) {
            const __m256i p = _mm256_add_epi32(dot_u8_i8(q, load256(a[t][b].qs)), lane0(-8 * a[t][b].sum));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[t][b].d), _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

template <int T>
void dot_q8_0_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q8_0_block*>(wv);
    const act_q8_32* a[T];
    act_rows(av, a_stride, a);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; ++b) {
        const float d = f16(w[b].d);
        const __m256i q = load256(w[b].qs);
        const __m256i aq = _mm256_sign_epi8(q, q);  // |q|; the sign moves onto the activations
        for (int t = 0; t < T; ++t) {
            const __m256i p = dot_u8_i8(aq, _mm256_sign_epi8(load256(a[t][b].qs), q));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a[t][b].d), _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

// Q4_K and Q5_K share the 6-bit scale/min layout; Q5_K adds a 5th bit per element from qh
// (bit 2j for the low nibbles of pair j, bit 2j+1 for the high ones).
template <class B, int T>
void dot_k45_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const B*>(wv);
    constexpr bool has_qh = std::is_same_v<B, q5_k_block>;
    const q8_k_block* a[T];
    act_rows(av, a_stride, a);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), corr[t] = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(w[b].scales, sc, mn);
        const __m128i mins16 = k4_mins16(mn);
        __m256i sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q4 = load256(w[b].qs + 32 * j);
            __m256i lo = _mm256_and_si256(q4, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            if constexpr (has_qh) {
                const __m256i hb = load256(w[b].qh);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
            }
            const __m256i slo = _mm256_set1_epi16(sc[2 * j]), shi = _mm256_set1_epi16(sc[2 * j + 1]);
            for (int t = 0; t < T; ++t) {
                const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(a[t][b].qs + 64 * j)), slo);
                const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(a[t][b].qs + 64 * j + 32)), shi);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(plo, phi));
            }
        }
        const float d = f16(w[b].d), dmin = f16(w[b].dmin);
        for (int t = 0; t < T; ++t) {
            const int mins = k4_mins_dot(mins16, a[t][b].bsums);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a[t][b].d * d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            corr[t] += a[t][b].d * dmin * float(mins);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]) - corr[t];
}

template <int T>
void dot_q6_k_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q6_k_block*>(wv);
    const q8_k_block* a[T];
    act_rows(av, a_stride, a);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m256 acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), corr[t] = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const int8_t* sc = w[b].scales;
        __m256i sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const uint8_t* qh = w[b].qh + 32 * h;
            const int8_t* s = sc + 8 * h;
            const __m256i la = load256(ql), lb = load256(ql + 32), hb = load256(qh);
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4)),
                _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4))};
            for (int k = 0; k < 4; ++k) {
                const __m256i sp = scale_pair(s[2 * k], s[2 * k + 1]);
                for (int t = 0; t < T; ++t) {
                    const int8_t* yq = a[t][b].qs + 128 * h + 32 * k;
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], load256(yq)), sp));
                }
            }
        }
        const float d = f16(w[b].d);
        for (int t = 0; t < T; ++t) {
            int offset = 0;
            for (int g = 0; g < 16; ++g) offset += sc[g] * a[t][b].bsums[g];
            const float dt = a[t][b].d * d;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dt), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            corr[t] += dt * float(offset);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]) - 32.0f * corr[t];
}

// Q2_K: x = d * (sc & 15) * q - dmin * (sc >> 4), 16 groups of 16, q = 2 bits. Pair j of half h
// holds bits 2j..2j+1 of qs[32h .. 32h+31], groups 8h+2j and 8h+2j+1.
template <int T>
void dot_q2_k_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q2_k_block*>(wv);
    const q8_k_block* a[T];
    act_rows(av, a_stride, a);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales));
        const __m256i scales2 = _mm256_broadcastsi128_si256(_mm_and_si128(sc, m4));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        __m256i sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i qv = load256(w[b].qs + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m2);
                const __m256i sp = pair_scales<false>(scales2, 4 * h + j);
                for (int t = 0; t < T; ++t) {
                    const int8_t* yq = a[t][b].qs + 128 * h + 32 * j;
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(yq)), sp));
                }
            }
        }
        const float d = f16(w[b].d), dmin = f16(w[b].dmin);
        for (int t = 0; t < T; ++t) {
            // Σ min[g] * bsum[g], in the lanes (summed with the rest by the final hsum).
            const __m256i mins = _mm256_madd_epi16(mins16, load256(a[t][b].bsums));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a[t][b].d * d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(a[t][b].d * dmin), _mm256_cvtepi32_ps(mins), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

// Q3_K: x = d * (sc - 32) * (q2 + 4*h - 4): q2 as in Q2_K, h = bit (4*half + j) of hmask[0..31];
// computed as sc * (u * y) - 4 * sc * bsum with u = q2 + 4*h in 0..7.
template <int T>
void dot_q3_k_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const q3_k_block*>(wv);
    const q8_k_block* a[T];
    act_rows(av, a_stride, a);
    const __m256i m2 = _mm256_set1_epi8(0x03), one = _mm256_set1_epi8(1);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const __m128i sc = q3_k_scales_v(w[b].scales);
        const __m256i scales2 = _mm256_broadcastsi128_si256(sc);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
        const __m256i hm = load256(w[b].hmask);
        __m256i sumi[T];
        for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i qv = load256(w[b].qs + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one), 2);
                const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m2), hb);
                const __m256i sp = pair_scales<true>(scales2, 4 * h + j);
                for (int t = 0; t < T; ++t) {
                    const int8_t* yq = a[t][b].qs + 128 * h + 32 * j;
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(yq)), sp));
                }
            }
        }
        const float d = f16(w[b].d);
        for (int t = 0; t < T; ++t) {
            // - 4 Σ sc[g] * bsum[g] folded into the integer sum (lanes are summed at the end).
            const __m256i offset = _mm256_madd_epi16(sc16, load256(a[t][b].bsums));
            const __m256i total = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(offset, 2));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(a[t][b].d * d), _mm256_cvtepi32_ps(total), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

template <void (*F)(const void*, const void*, size_t, int64_t, float*, size_t)>
float single(const void* w, const void* a, int64_t n) {
    float y;
    F(w, a, 0, n, &y, 0);
    return y;
}

float dot_q5_k_1(const void* w, const void* a, int64_t n) {
    float y;
    dot_k45_n<q5_k_block, 1>(w, a, 0, n, &y, 0);
    return y;
}

}  // namespace

// Fills k.dot_n[1..3] (2, 3 and 4 tokens) for the types that have tile kernels (and k.dot for
// Q2_K, Q3_K and Q5_K, whose single-token dot is the T = 1 tile).
void add_tile_kernels(ggml_type t, mul_mat_kernel& k) {
    switch (t) {
        case ggml_type::q4_0: k.dot_n[1] = dot_q4_0_n<2>, k.dot_n[2] = dot_q4_0_n<3>, k.dot_n[3] = dot_q4_0_n<4>; break;
        case ggml_type::q8_0: k.dot_n[1] = dot_q8_0_n<2>, k.dot_n[2] = dot_q8_0_n<3>, k.dot_n[3] = dot_q8_0_n<4>; break;
        case ggml_type::q4_k: k.dot_n[1] = dot_k45_n<q4_k_block, 2>, k.dot_n[2] = dot_k45_n<q4_k_block, 3>, k.dot_n[3] = dot_k45_n<q4_k_block, 4>;
            break;
        case ggml_type::q5_k:
            k.dot = dot_q5_k_1;
            k.dot_n[1] = dot_k45_n<q5_k_block, 2>, k.dot_n[2] = dot_k45_n<q5_k_block, 3>, k.dot_n[3] = dot_k45_n<q5_k_block, 4>;
            break;
        case ggml_type::q2_k:
            k.dot = single<dot_q2_k_n<1>>;
            k.dot_n[1] = dot_q2_k_n<2>, k.dot_n[2] = dot_q2_k_n<3>, k.dot_n[3] = dot_q2_k_n<4>;
            break;
        case ggml_type::q3_k:
            k.dot = single<dot_q3_k_n<1>>;
            k.dot_n[1] = dot_q3_k_n<2>, k.dot_n[2] = dot_q3_k_n<3>, k.dot_n[3] = dot_q3_k_n<4>;
            break;
        case ggml_type::q6_k: k.dot_n[1] = dot_q6_k_n<2>, k.dot_n[2] = dot_q6_k_n<3>, k.dot_n[3] = dot_q6_k_n<4>; break;
        default: break;
    }
}

}  // namespace edgellm::kernels::cpu::avx2_detail
