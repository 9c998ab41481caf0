// Body of the fast k-quant row quantizers, compiled once per ISA inside namespace
// edgellm::EDGELLM_KQ_NS, with lane vectors of EDGELLM_KQ_VEC_BYTES bytes in packs of
// EDGELLM_KQ_PACK (quant_k_fast.cpp: portable, quant_k_fast_avx2.cpp, quant_k_fast_avx512.cpp).
// Output is bit-identical to the reference (quant_k.cpp) because nothing is reordered: each lane
// runs the reference's exact scalar sequence of float operations for one sub-block (the searches
// of make_qkx2_quants / make_qx_quants / make_q3_quants), and lanes run different sub-blocks,
// possibly of several super-blocks. Other savings leave results alone: x - min is kept until min
// changes, a step in which no lane improves is cut short (it would change nothing), a q3 pass
// runs again only while some lane changed (an unchanged lane's next pass is a no-op), and bit
// packing avoids data-dependent branches. Contraction into FMA is off, as in the reference.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "quant/fp16.h"
#include "quant/quant.h"
#include "quant/quant_internal.h"

#if !defined(EDGELLM_KQ_NS) || !defined(EDGELLM_KQ_VEC_BYTES) || !defined(EDGELLM_KQ_PACK)
#error "define EDGELLM_KQ_NS, EDGELLM_KQ_VEC_BYTES and EDGELLM_KQ_PACK before including quant_k_fast_impl.h"
#endif

EDGELLM_NO_FP_CONTRACT
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define KQ_INLINE inline __attribute__((always_inline))

namespace edgellm::EDGELLM_KQ_NS {
namespace {

typedef float vf __attribute__((vector_size(EDGELLM_KQ_VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(EDGELLM_KQ_VEC_BYTES)));
constexpr int W = EDGELLM_KQ_VEC_BYTES / 4;  // floats per vector
static_assert(W >= 4 && W <= 16 && (W & (W - 1)) == 0);
// Lanes are packs of K vectors: K independent dependency chains keep the core busy where one
// vector would wait on the latency of the reference's running sums.
constexpr int K = EDGELLM_KQ_PACK;
constexpr int LANES = W * K;
static_assert(K == 1 || K == 2);

constexpr float k_group_max_eps = 1e-15f;

// ---- one vector -------------------------------------------------------------------------------

// Per element, exactly v: x - (+0) == x for every x, where `vf{} + v` would turn -0 into +0.
KQ_INLINE vf splat(float v) { return v - vf{}; }

KQ_INLINE vf loadu(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

// ggml's nearest_int (the 1.5*2^23 trick), scalar and per element, same bits for every input.
KQ_INLINE int nearest_int_s(float fval) {
    const float val = fval + 12582912.f;
    return (std::bit_cast<int32_t>(val) & 0x007fffff) - 0x00400000;
}
KQ_INLINE vi nearest_int(vf v) { return ((vi)(v + 12582912.f) & 0x007fffff) - 0x00400000; }

// std::max(lo, std::min(hi, l)) of the integer l, as a float (exact: |l| < 2^23).
KQ_INLINE vf clamp_to_float(vi l, int lo, int hi) {
    const vi vlo = vi{} + lo, vhi = vi{} + hi;
    l = l < vlo ? vlo : l;
    l = l > vhi ? vhi : l;
    return __builtin_convertvector(l, vf);
}

typedef uint8_t vu8 __attribute__((vector_size(W)));

// Writes W small non-negative integers held as floats as bytes.
KQ_INLINE void store_u8(vf v, uint8_t* out) {
    const vu8 b = __builtin_convertvector(__builtin_convertvector(v, vi), vu8);
    std::memcpy(out, &b, sizeof(b));
}

// Whether any element of a mask (all ones or zero per element) is set.
KQ_INLINE bool any(vi m) {
#if defined(__AVX512F__) && EDGELLM_KQ_VEC_BYTES == 64
    return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif defined(__AVX__) && EDGELLM_KQ_VEC_BYTES == 32
    return !_mm256_testz_si256((__m256i)m, (__m256i)m);
#elif defined(__SSE2__) && EDGELLM_KQ_VEC_BYTES == 16
    return _mm_movemask_ps((__m128)m) != 0;
#elif defined(__aarch64__) && defined(__ARM_NEON) && EDGELLM_KQ_VEC_BYTES == 16
    return vmaxvq_u32((uint32x4_t)m) != 0;
#else
    uint64_t u[W / 2];
    std::memcpy(u, &m, sizeof(m));
    uint64_t r = 0;
    for (uint64_t v : u) r |= v;
    return r != 0;
#endif
}

// ---- a pack of K vectors: one float (lf) or int/mask (li) per lane -----------------------------

struct lf {
    vf v[K];
};
struct li {
    vi v[K];
};
#define KQ_FOR(g) for (int g = 0; g < K; ++g)
#define KQ_ARITH(op)                                                          \
    KQ_INLINE lf operator op(lf a, lf b) {                                    \
        KQ_FOR(g) a.v[g] = a.v[g] op b.v[g];                                  \
        return a;                                                             \
    }                                                                         \
    KQ_INLINE lf operator op(lf a, float b) {                                 \
        KQ_FOR(g) a.v[g] = a.v[g] op b;                                       \
        return a;                                                             \
    }                                                                         \
    KQ_INLINE lf operator op(float a, lf b) {                                 \
        KQ_FOR(g) b.v[g] = a op b.v[g];                                       \
        return b;                                                             \
    }                                                                         \
    KQ_INLINE lf& operator op##=(lf & a, lf b) { return a = a op b; }
KQ_ARITH(+)
KQ_ARITH(-)
KQ_ARITH(*)
KQ_ARITH(/)
#define KQ_CMP(op)                                \
    KQ_INLINE li operator op(lf a, lf b) {        \
        li r;                                     \
        KQ_FOR(g) r.v[g] = a.v[g] op b.v[g];      \
        return r;                                 \
    }                                             \
    KQ_INLINE li operator op(lf a, float b) {     \
        li r;                                     \
        KQ_FOR(g) r.v[g] = a.v[g] op b;           \
        return r;                                 \
    }
KQ_CMP(<)
KQ_CMP(>)
KQ_CMP(==)
KQ_CMP(!=)
#define KQ_BITS(op)                            \
    KQ_INLINE li operator op(li a, li b) {     \
        KQ_FOR(g) a.v[g] = a.v[g] op b.v[g];   \
        return a;                              \
    }                                          \
    KQ_INLINE li& operator op##=(li & a, li b) { return a = a op b; }
KQ_BITS(&)
KQ_BITS(|)
#undef KQ_ARITH
#undef KQ_CMP
#undef KQ_BITS

KQ_INLINE lf operator-(lf a) {
    KQ_FOR(g) a.v[g] = -a.v[g];
    return a;
}

// m ? a : b per lane (m all ones or zero).
KQ_INLINE lf sel(li m, lf a, lf b) {
    KQ_FOR(g) a.v[g] = m.v[g] ? a.v[g] : b.v[g];
    return a;
}

KQ_INLINE bool any(li m) {
    vi r = m.v[0];
    for (int g = 1; g < K; ++g) r |= m.v[g];
    return any(r);
}

KQ_INLINE lf lsplat(float v) {
    lf r;
    KQ_FOR(g) r.v[g] = splat(v);
    return r;
}

KQ_INLINE lf lload(const float* p) {
    lf r;
    KQ_FOR(g) r.v[g] = loadu(p + g * W);
    return r;
}

KQ_INLINE void lstore(float* p, lf a) { KQ_FOR(g) std::memcpy(p + g * W, &a.v[g], sizeof(vf)); }

KQ_INLINE lf vabs(lf a) {
    KQ_FOR(g) a.v[g] = (vf)((vi)a.v[g] & 0x7fffffff);
    return a;
}

KQ_INLINE li nearest_int(lf a) {
    li r;
    KQ_FOR(g) r.v[g] = nearest_int(a.v[g]);
    return r;
}

KQ_INLINE lf clamp_to_float(li l, int lo, int hi) {
    lf r;
    KQ_FOR(g) r.v[g] = clamp_to_float(l.v[g], lo, hi);
    return r;
}

// Lane k gets sub-block s0 + k (SUB floats each) of x; sub-blocks at or past n_sub are zeros.
template <int SUB>
KQ_INLINE void gather(const float* x, int s0, int n_sub, lf* xt) {
    alignas(64) float t[SUB][LANES];
    for (int k = 0; k < LANES; ++k) {
        const int s = s0 + k;
        for (int i = 0; i < SUB; ++i) t[i][k] = s < n_sub ? x[s * SUB + i] : 0.f;
    }
    for (int i = 0; i < SUB; ++i) xt[i] = lload(t[i]);
}

// Lane k of L (SUB small non-negative integers as floats) goes to sub-block s0 + k of out.
template <int SUB>
KQ_INLINE void scatter_u8(const lf* L, int s0, uint8_t* out) {
    alignas(64) float t[SUB][LANES];
    for (int i = 0; i < SUB; ++i) lstore(t[i], L[i]);
    for (int k = 0; k < LANES; ++k)
        for (int i = 0; i < SUB; ++i) out[(s0 + k) * SUB + i] = static_cast<uint8_t>(static_cast<int>(t[i][k]));
}

// make_qkx2_quants on LANES sub-blocks of N at once. L: levels 0..NMAX as floats.
template <int N, int NMAX, int NSTEP, bool MAD>
KQ_INLINE void qkx2_lanes(const lf* x, const lf* w, float rmin, float rdelta, lf* L, lf* scale_out,
                          lf* the_min_out) {
    const lf zero = lsplat(0.f);
    lf min = x[0], max = x[0];
    lf sum_w = w[0];
    lf sum_x = sum_w * x[0];
    for (int i = 1; i < N; ++i) {
        min = sel(x[i] < min, x[i], min);
        max = sel(x[i] > max, x[i], max);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    min = sel(min > 0, zero, min);
    const li flat = max == min;
    const lf min0 = min;
    lf iscale = float(NMAX) / (max - min);
    lf scale = 1.f / iscale;
    lf best_error = zero;
    lf xm[N];  // x[i] - min, recomputed whenever min changes
    for (int i = 0; i < N; ++i) xm[i] = x[i] - min;
    for (int i = 0; i < N; ++i) {
        const lf l = clamp_to_float(nearest_int(iscale * xm[i]), 0, NMAX);
        L[i] = l;
        lf diff = scale * l + min - x[i];
        diff = MAD ? vabs(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    lf laux[N];
    for (int is = 0; is <= NSTEP; ++is) {
        iscale = (rmin + rdelta * is + NMAX) / (max - min);
        lf sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < N; ++i) {
            const lf l = clamp_to_float(nearest_int(iscale * xm[i]), 0, NMAX);
            laux[i] = l;
            const lf wl = w[i] * l;
            sum_l += wl;
            sum_l2 += wl * l;
            sum_xl += wl * x[i];
        }
        const lf D = sum_w * sum_l2 - sum_l * sum_l;
        const li positive = D > 0;
        if (!any(positive)) continue;
        lf this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        lf this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        const li min_pos = this_min > 0;
        this_min = sel(min_pos, zero, this_min);
        this_scale = sel(min_pos, sum_xl / sum_l2, this_scale);
        lf cur_error = zero;
        for (int i = 0; i < N; ++i) {
            lf diff = this_scale * laux[i] + this_min - x[i];
            diff = MAD ? vabs(diff) : diff * diff;
            cur_error += w[i] * diff;
        }
        const li better = positive & (cur_error < best_error);
        if (!any(better)) continue;
        for (int i = 0; i < N; ++i) L[i] = sel(better, laux[i], L[i]);
        best_error = sel(better, cur_error, best_error);
        scale = sel(better, this_scale, scale);
        min = sel(better, this_min, min);
        for (int i = 0; i < N; ++i) xm[i] = x[i] - min;
    }
    for (int i = 0; i < N; ++i) L[i] = sel(flat, zero, L[i]);
    *the_min_out = -sel(flat, min0, min);
    *scale_out = sel(flat, zero, scale);
}

// Largest |x| per lane and the signed value that has it (first one on ties).
template <int N>
KQ_INLINE lf signed_absmax(const lf* x, lf* amax_out) {
    lf max = lsplat(0.f), amax = lsplat(0.f);
    for (int i = 0; i < N; ++i) {
        const lf ax = vabs(x[i]);
        const li m = ax > amax;
        amax = sel(m, ax, amax);
        max = sel(m, x[i], max);
    }
    *amax_out = amax;
    return max;
}

// make_qx_quants (rmse_type 1, no weights) on LANES sub-blocks of N at once. L: l + NMAX as floats.
template <int N, int NMAX>
KQ_INLINE lf qx_lanes(const lf* x, lf* L) {
    const lf zero = lsplat(0.f);
    lf amax;
    const lf max = signed_absmax<N>(x, &amax);
    const li small = amax < k_group_max_eps;
    lf w[N], wx[N], lt[N];
    for (int i = 0; i < N; ++i) {
        w[i] = x[i] * x[i];
        wx[i] = w[i] * x[i];
    }
    lf iscale = float(-NMAX) / max;
    lf sumlx = zero, suml2 = zero;
    for (int i = 0; i < N; ++i) {
        const lf l = clamp_to_float(nearest_int(iscale * x[i]), -NMAX, NMAX - 1);
        L[i] = l + float(NMAX);
        sumlx += wx[i] * l;
        suml2 += w[i] * l * l;
    }
    lf scale = sel(suml2 != 0, sumlx / suml2, zero);
    lf best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(NMAX + 0.1f * is) / max;
        sumlx = suml2 = zero;
        for (int i = 0; i < N; ++i) {
            const lf l = clamp_to_float(nearest_int(iscale * x[i]), -NMAX, NMAX - 1);
            lt[i] = l;
            sumlx += wx[i] * l;
            suml2 += w[i] * l * l;
        }
        const li upd = (suml2 > 0) & (sumlx * sumlx > best * suml2);
        if (!any(upd)) continue;
        for (int i = 0; i < N; ++i) L[i] = sel(upd, lt[i] + float(NMAX), L[i]);
        const lf new_scale = sumlx / suml2;
        scale = sel(upd, new_scale, scale);
        best = sel(upd, new_scale * sumlx, best);
    }
    for (int i = 0; i < N; ++i) L[i] = sel(small, zero, L[i]);
    return sel(small, zero, scale);
}

// make_q3_quants (coordinate descent, do_rmse) on LANES sub-blocks of N at once. L: l + NMAX as
// floats.
template <int N, int NMAX>
KQ_INLINE lf q3_lanes(const lf* x, lf* L) {
    const lf zero = lsplat(0.f);
    lf amax;
    const lf max = signed_absmax<N>(x, &amax);
    const li small = amax < k_group_max_eps;
    lf w[N], wx[N];
    for (int i = 0; i < N; ++i) {
        w[i] = x[i] * x[i];
        wx[i] = w[i] * x[i];
    }
    const lf iscale = float(-NMAX) / max;
    lf sumlx = zero, suml2 = zero;
    for (int i = 0; i < N; ++i) {
        const lf l = clamp_to_float(nearest_int(iscale * x[i]), -NMAX, NMAX - 1);
        L[i] = l;
        sumlx += wx[i] * l;
        suml2 += w[i] * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        li changed = li{};
        for (int i = 0; i < N; ++i) {
            lf slx = sumlx - wx[i] * L[i];
            lf sl2 = suml2 - w[i] * L[i] * L[i];
            const lf new_l = clamp_to_float(nearest_int(x[i] * sl2 / slx), -NMAX, NMAX - 1);
            li take = (slx > 0) & (new_l != L[i]);
            slx += wx[i] * new_l;
            sl2 += w[i] * new_l * new_l;
            take &= (sl2 > 0) & (slx * slx * suml2 > sumlx * sumlx * sl2);
            L[i] = sel(take, new_l, L[i]);
            sumlx = sel(take, slx, sumlx);
            suml2 = sel(take, sl2, suml2);
            changed |= take;
        }
        if (!any(changed)) break;
    }
    for (int i = 0; i < N; ++i) L[i] = sel(small, zero, L[i] + float(NMAX));
    return sel(small, zero, sel(suml2 > 0, sumlx / suml2, zero));
}

// Super-blocks handled per search chunk: enough sub-blocks to fill every lane.
template <int SUB>
constexpr int chunk_blocks() {
    return std::max(1, LANES * SUB / QK_K);
}

// Searches sub-blocks [0, n_total) of SUB floats at x in groups of LANES (sub-blocks at or past
// n_sub are zero padding): search(xt, L) returns the lanes' scales and writes their levels;
// extra(xt) (the mins, for Q2_K/Q4_K/Q5_K) is stored too when `extra_out` is given.
template <int SUB, class Search>
KQ_INLINE void search_groups(const float* x, int n_total, int n_sub, float* scales, float* extra_out, uint8_t* L,
                             Search search) {
    for (int s0 = 0; s0 < n_total; s0 += LANES) {
        lf xt[SUB], lt[SUB], extra;
        gather<SUB>(x, s0, n_sub, xt);
        lstore(scales + s0, search(xt, lt, &extra));
        if (extra_out) lstore(extra_out + s0, extra);
        scatter_u8<SUB>(lt, s0, L);
    }
}

// ---- Q4_K / Q5_K ------------------------------------------------------------------------------

// The scale search of quantize_k4_scales for the sub-blocks of 32 of a chunk.
template <int NMAX, int NSTEP>
KQ_INLINE void k4_search(const float* x, int n_total, int n_sub, float rmin, float* scales, float* mins, uint8_t* L) {
    search_groups<32>(x, n_total, n_sub, scales, mins, L, [rmin](const lf* xt, lf* lt, lf* mn) {
        lf wt[32];
        lf sum_x2 = lsplat(0.f);
        for (int i = 0; i < 32; ++i) sum_x2 += xt[i] * xt[i];
        alignas(64) float av_x[LANES];
        lstore(av_x, sum_x2 / 32.f);
        for (int k = 0; k < LANES; ++k) av_x[k] = std::sqrt(av_x[k]);
        const lf av = lload(av_x);
        for (int i = 0; i < 32; ++i) wt[i] = av + vabs(xt[i]);
        lf sc;
        qkx2_lanes<32, NMAX, NSTEP, false>(xt, wt, rmin, 0.1f, lt, &sc, mn);
        return sc;
    });
}

// The rest of quantize_k4_scales for one super-block, given its 8 searched scales and mins.
template <int NMAX>
KQ_INLINE void k4_finish(const float* x, const float* scales, const float* mins, uint8_t* L,
                         uint8_t packed[K_SCALE_SIZE], fp16_bits* d_out, fp16_bits* dmin_out) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(packed, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; ++j) {
        const uint8_t ls = static_cast<uint8_t>(std::min(63, nearest_int_s(inv_scale * scales[j])));
        const uint8_t lm = static_cast<uint8_t>(std::min(63, nearest_int_s(inv_min * mins[j])));
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((ls >> 4) << 6));
            packed[j - 0] = static_cast<uint8_t>(packed[j - 0] | ((lm >> 4) << 6));
        }
    }
    *d_out = fp32_to_fp16(max_scale / 63.f);
    *dmin_out = fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        k4_scale_min(j, packed, &sc, &m);
        const float d = fp16_to_fp32(*d_out) * sc;
        if (!d) continue;
        const float dm = fp16_to_fp32(*dmin_out) * m;
        const vf vd = splat(d), vdm = splat(dm);
        for (int ii = 0; ii < 32; ii += W)
            store_u8(clamp_to_float(nearest_int((loadu(x + 32 * j + ii) + vdm) / vd), 0, NMAX), L + 32 * j + ii);
    }
}

void q4_k_row(const float* x, q4_k_block* y, int64_t n) {
    constexpr int CB = chunk_blocks<32>();
    const int64_t nb = n / QK_K;
    for (int64_t b0 = 0; b0 < nb; b0 += CB) {
        const int n_blocks = static_cast<int>(std::min<int64_t>(CB, nb - b0));
        float scales[CB * 8], mins[CB * 8];
        uint8_t L[CB * QK_K];
        k4_search<15, 20>(x + b0 * QK_K, CB * 8, n_blocks * 8, -1.f, scales, mins, L);
        for (int b = 0; b < n_blocks; ++b) {
            q4_k_block& blk = y[b0 + b];
            uint8_t* Lb = L + b * QK_K;
            k4_finish<15>(x + (b0 + b) * QK_K, scales + 8 * b, mins + 8 * b, Lb, blk.scales, &blk.d, &blk.dmin);
            uint8_t* q = blk.qs;
            for (int j = 0; j < QK_K; j += 64) {
                for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(Lb[j + l] | (Lb[j + l + 32] << 4));
                q += 32;
            }
        }
    }
}

void q5_k_row(const float* x, q5_k_block* y, int64_t n) {
    constexpr int CB = chunk_blocks<32>();
    const int64_t nb = n / QK_K;
    for (int64_t b0 = 0; b0 < nb; b0 += CB) {
        const int n_blocks = static_cast<int>(std::min<int64_t>(CB, nb - b0));
        float scales[CB * 8], mins[CB * 8];
        uint8_t L[CB * QK_K];
        k4_search<31, 15>(x + b0 * QK_K, CB * 8, n_blocks * 8, -0.5f, scales, mins, L);
        for (int b = 0; b < n_blocks; ++b) {
            q5_k_block& blk = y[b0 + b];
            uint8_t* Lb = L + b * QK_K;
            k4_finish<31>(x + (b0 + b) * QK_K, scales + 8 * b, mins + 8 * b, Lb, blk.scales, &blk.d, &blk.dmin);
            uint8_t* qh = blk.qh;
            uint8_t* ql = blk.qs;
            // The reference's high-bit loop without its data-dependent branches; L is 0..31.
            std::memset(qh, 0, QK_K / 8);
            for (int n64 = 0, shift = 0; n64 < QK_K; n64 += 64, shift += 2) {
                for (int j = 0; j < 32; ++j) {
                    const int l1 = Lb[n64 + j], l2 = Lb[n64 + j + 32];
                    qh[j] = static_cast<uint8_t>(qh[j] | ((l1 >> 4) << shift) | ((l2 >> 4) << (shift + 1)));
                    ql[j] = static_cast<uint8_t>((l1 & 0xF) | ((l2 & 0xF) << 4));
                }
                ql += 32;
            }
        }
    }
}

// ---- Q2_K -------------------------------------------------------------------------------------

void q2_k_row(const float* x, q2_k_block* y, int64_t n) {
    constexpr int CB = chunk_blocks<16>();
    constexpr float q4scale = 15.f;
    const int64_t nb = n / QK_K;
    for (int64_t b0 = 0; b0 < nb; b0 += CB) {
        const int n_blocks = static_cast<int>(std::min<int64_t>(CB, nb - b0));
        float scales[CB * 16], mins[CB * 16];
        uint8_t Lc[CB * QK_K];
        search_groups<16>(x + b0 * QK_K, CB * 16, n_blocks * 16, scales, mins, Lc, [](const lf* xt, lf* lt, lf* mn) {
            lf wt[16], sc;
            for (int i = 0; i < 16; ++i) wt[i] = vabs(xt[i]);
            qkx2_lanes<16, 3, 15, true>(xt, wt, -0.5f, 0.1f, lt, &sc, mn);
            return sc;
        });
        for (int b = 0; b < n_blocks; ++b) {
            q2_k_block& blk = y[b0 + b];
            const float* xb = x + (b0 + b) * QK_K;
            const float* sb = scales + 16 * b;
            const float* mb = mins + 16 * b;
            uint8_t* L = Lc + b * QK_K;
            float max_scale = 0, max_min = 0;
            for (int j = 0; j < QK_K / 16; ++j) {
                max_scale = std::max(max_scale, sb[j]);
                max_min = std::max(max_min, mb[j]);
            }
            if (max_scale > 0) {
                const float iscale = q4scale / max_scale;
                for (int j = 0; j < QK_K / 16; ++j)
                    blk.scales[j] = static_cast<uint8_t>(nearest_int_s(iscale * sb[j]));
                blk.d = fp32_to_fp16(max_scale / q4scale);
            } else {
                std::memset(blk.scales, 0, sizeof(blk.scales));
                blk.d = fp32_to_fp16(0.f);
            }
            if (max_min > 0) {
                const float iscale = q4scale / max_min;
                for (int j = 0; j < QK_K / 16; ++j)
                    blk.scales[j] = static_cast<uint8_t>(blk.scales[j] | (nearest_int_s(iscale * mb[j]) << 4));
                blk.dmin = fp32_to_fp16(max_min / q4scale);
            } else {
                blk.dmin = fp32_to_fp16(0.f);
            }
            for (int j = 0; j < QK_K / 16; ++j) {
                const float d = fp16_to_fp32(blk.d) * (blk.scales[j] & 0xF);
                if (!d) continue;
                const float dm = fp16_to_fp32(blk.dmin) * (blk.scales[j] >> 4);
                const vf vd = splat(d), vdm = splat(dm);
                for (int ii = 0; ii < 16; ii += W)
                    store_u8(clamp_to_float(nearest_int((loadu(xb + 16 * j + ii) + vdm) / vd), 0, 3),
                             L + 16 * j + ii);
            }
            for (int j = 0; j < QK_K; j += 128)
                for (int l = 0; l < 32; ++l)
                    blk.qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                             (L[j + l + 96] << 6));
        }
    }
}

// ---- Q3_K -------------------------------------------------------------------------------------

void q3_k_row(const float* x, q3_k_block* y, int64_t n) {
    constexpr int CB = chunk_blocks<16>();
    const int64_t nb = n / QK_K;
    for (int64_t b0 = 0; b0 < nb; b0 += CB) {
        const int n_blocks = static_cast<int>(std::min<int64_t>(CB, nb - b0));
        float scales_c[CB * 16];
        uint8_t Lc[CB * QK_K];
        search_groups<16>(x + b0 * QK_K, CB * 16, n_blocks * 16, scales_c, nullptr, Lc,
                          [](const lf* xt, lf* lt, lf*) { return q3_lanes<16, 4>(xt, lt); });
        for (int b = 0; b < n_blocks; ++b) {
            q3_k_block& blk = y[b0 + b];
            const float* xb = x + (b0 + b) * QK_K;
            const float* scales = scales_c + 16 * b;
            uint8_t* L = Lc + b * QK_K;  // the reference's int8 levels 0..7, all non-negative
            float max_scale = 0, amax = 0;
            for (int j = 0; j < QK_K / 16; ++j) {
                const float scale = std::fabs(scales[j]);
                if (scale > amax) {
                    amax = scale;
                    max_scale = scales[j];
                }
            }
            std::memset(blk.scales, 0, sizeof(blk.scales));
            if (max_scale) {
                const float iscale = -32.f / max_scale;
                for (int j = 0; j < QK_K / 16; ++j) {
                    int l = nearest_int_s(iscale * scales[j]);
                    l = std::max(-32, std::min(31, l)) + 32;
                    if (j < 8)
                        blk.scales[j] = static_cast<uint8_t>(l & 0xF);
                    else
                        blk.scales[j - 8] = static_cast<uint8_t>(blk.scales[j - 8] | ((l & 0xF) << 4));
                    l >>= 4;
                    blk.scales[j % 4 + 8] = static_cast<uint8_t>(blk.scales[j % 4 + 8] | (l << (2 * (j / 4))));
                }
                blk.d = fp32_to_fp16(1 / iscale);
            } else {
                blk.d = fp32_to_fp16(0.f);
            }
            int8_t sc[16];
            q3_k_scales(blk.scales, sc);
            for (int j = 0; j < QK_K / 16; ++j) {
                const float d = fp16_to_fp32(blk.d) * sc[j];
                if (!d) continue;
                const vf vd = splat(d);
                for (int ii = 0; ii < 16; ii += W)
                    store_u8(clamp_to_float(nearest_int(loadu(xb + 16 * j + ii) / vd), -4, 3) + 4.f, L + 16 * j + ii);
            }
            // The reference's loop over j (if L[j] > 3: set bit j / 32 of hmask[j % 32], L[j] -= 4)
            // without its data-dependent branch; L[j] is 0..7.
            for (int m = 0; m < QK_K / 8; ++m) {
                uint8_t h = 0;
                for (int k = 0; k < 8; ++k) {
                    h = static_cast<uint8_t>(h | ((L[32 * k + m] >> 2) << k));
                    L[32 * k + m] &= 3;
                }
                blk.hmask[m] = h;
            }
            for (int j = 0; j < QK_K; j += 128)
                for (int l = 0; l < 32; ++l)
                    blk.qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                             (L[j + l + 96] << 6));
        }
    }
}

// ---- Q6_K -------------------------------------------------------------------------------------

void q6_k_row(const float* x, q6_k_block* y, int64_t n) {
    constexpr int CB = chunk_blocks<16>();
    const int64_t nb = n / QK_K;
    for (int64_t b0 = 0; b0 < nb; b0 += CB) {
        const int n_blocks = static_cast<int>(std::min<int64_t>(CB, nb - b0));
        float scales_c[CB * 16];
        uint8_t Lc[CB * QK_K];
        search_groups<16>(x + b0 * QK_K, CB * 16, n_blocks * 16, scales_c, nullptr, Lc,
                          [](const lf* xt, lf* lt, lf*) { return qx_lanes<16, 32>(xt, lt); });
        for (int b = 0; b < n_blocks; ++b) {
            q6_k_block& blk = y[b0 + b];
            const float* xb = x + (b0 + b) * QK_K;
            const float* scales = scales_c + 16 * b;
            uint8_t* L = Lc + b * QK_K;  // the reference's int8 levels 0..63
            float max_scale = 0, max_abs_scale = 0;
            for (int ib = 0; ib < QK_K / 16; ++ib) {
                const float abs_scale = std::fabs(scales[ib]);
                if (abs_scale > max_abs_scale) {
                    max_abs_scale = abs_scale;
                    max_scale = scales[ib];
                }
            }
            if (max_abs_scale < k_group_max_eps) {
                std::memset(&blk, 0, sizeof(blk));
                continue;
            }
            const float iscale = -128.f / max_scale;
            blk.d = fp32_to_fp16(1 / iscale);
            for (int ib = 0; ib < QK_K / 16; ++ib)
                blk.scales[ib] = static_cast<int8_t>(std::min(127, nearest_int_s(iscale * scales[ib])));
            for (int j = 0; j < QK_K / 16; ++j) {
                const float d = fp16_to_fp32(blk.d) * blk.scales[j];
                if (!d) continue;
                const vf vd = splat(d);
                for (int ii = 0; ii < 16; ii += W)
                    store_u8(clamp_to_float(nearest_int(loadu(xb + 16 * j + ii) / vd), -32, 31) + 32.f,
                             L + 16 * j + ii);
            }
            uint8_t* ql = blk.ql;
            uint8_t* qh = blk.qh;
            for (int j = 0; j < QK_K; j += 128) {
                for (int l = 0; l < 32; ++l) {
                    const uint8_t q1 = L[j + l + 0] & 0xF;
                    const uint8_t q2 = L[j + l + 32] & 0xF;
                    const uint8_t q3 = L[j + l + 64] & 0xF;
                    const uint8_t q4 = L[j + l + 96] & 0xF;
                    ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
                    ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
                    qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                                 ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
                ql += 64;
                qh += 32;
            }
        }
    }
}

}  // namespace
}  // namespace edgellm::EDGELLM_KQ_NS

#undef KQ_INLINE
#undef KQ_FOR
