// AVX2/FMA/F16C dot products of one weight row with one prepared activation row, ggml-style:
// activations are 8-bit (act_q8_32 or q8_k), weights are unpacked to bytes in registers and
// multiplied with maddubs (u8 x i8 -> i16 pairs) + madd (-> i32), scaled per block in f32.
#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/legacy_dots_x86.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu::avx2_detail {
namespace {

// Q4_0: x = d * (q - 8); per block the integer dot is sum(q*y) - 8*sum(y).
float dot_q4_0(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q4_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m256i p0 = _mm256_add_epi32(dot_u8_i8(unpack_nibbles(w[b].qs), load256(a[b].qs)), lane0(-8 * a[b].sum));
        const __m256i p1 =
            _mm256_add_epi32(dot_u8_i8(unpack_nibbles(w[b + 1].qs), load256(a[b + 1].qs)), lane0(-8 * a[b + 1].sum));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b + 1].d) * a[b + 1].d), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; ++b) {
        const __m256i p0 = _mm256_add_epi32(dot_u8_i8(unpack_nibbles(w[b].qs), load256(a[b].qs)), lane0(-8 * a[b].sum));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p0), acc0);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

float dot_q8_0(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q8_0_block*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m256i p0 = dot_i8_i8(load256(w[b].qs), load256(a[b].qs));
        const __m256i p1 = dot_i8_i8(load256(w[b + 1].qs), load256(a[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b + 1].d) * a[b + 1].d), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; ++b) {
        const __m256i p0 = dot_i8_i8(load256(w[b].qs), load256(a[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(w[b].d) * a[b].d), _mm256_cvtepi32_ps(p0), acc0);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

// Q4_K: per super-block x = d*sc[j]*q - dmin*m[j] over 8 sub-blocks of 32.
float dot_q4_k(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q4_k_block*>(wv);
    const auto* a = static_cast<const q8_k_block*>(av);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(w[b].scales, sc, mn);
        const int mins = k4_mins_dot(k4_mins16(mn), a[b].bsums);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q4 = load256(w[b].qs + 32 * j);
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i plo = _mm256_maddubs_epi16(lo, load256(a[b].qs + 64 * j));
            const __m256i phi = _mm256_maddubs_epi16(hi, load256(a[b].qs + 64 * j + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * j])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * j + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(a[b].d * f16(w[b].d)), _mm256_cvtepi32_ps(sumi), acc);
        corr += a[b].d * f16(w[b].dmin) * float(mins);
    }
    return hsum(acc) - corr;
}

// Q6_K: x = d * sc[g] * (q - 32), 16 groups of 16, q = 4 bits from ql + 2 bits from qh.
float dot_q6_k(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const q6_k_block*>(wv);
    const auto* a = static_cast<const q8_k_block*>(av);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < n / QK_K; ++b) {
        const int8_t* sc = w[b].scales;
        int offset = 0;  // 32 * sum(sc[g] * bsum[g]): the -32 of every stored q
        for (int g = 0; g < 16; ++g) offset += sc[g] * a[b].bsums[g];
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const uint8_t* qh = w[b].qh + 32 * h;
            const int8_t* s = sc + 8 * h;
            const int8_t* y = a[b].qs + 128 * h;
            const __m256i la = load256(ql), lb = load256(ql + 32), hb = load256(qh);
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(lb, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
            const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q1, load256(y)), scale_pair(s[0], s[1])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q2, load256(y + 32)), scale_pair(s[2], s[3])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q3, load256(y + 64)), scale_pair(s[4], s[5])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q4, load256(y + 96)), scale_pair(s[6], s[7])));
        }
        const float d = a[b].d * f16(w[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        corr += d * float(offset);
    }
    return hsum(acc) - 32.0f * corr;
}

float dot_f16(const void* wv, const void* xv, int64_t n) {
    const auto* w = static_cast<const fp16_bits*>(wv);
    const auto* x = static_cast<const float*>(xv);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k) {
            const __m256 wf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8 * k)));
            acc[k] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i + 8 * k), acc[k]);
        }
    for (; i + 8 <= n; i += 8) {
        const __m256 wf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
        acc[0] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), acc[0]);
    }
    float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) s += f16(w[i]) * x[i];
    return s;
}

// BF16 is the top half of an f32: widen to 32 bits and shift into place.
float dot_bf16(const void* wv, const void* xv, int64_t n) {
    const auto* w = static_cast<const bf16_bits*>(wv);
    const auto* x = static_cast<const float*>(xv);
    // Four independent accumulators over 32 elements per step, as dot_f16 (two were 0.8x of it).
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    auto load_bf16 = [&](int64_t k) {
        const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    };
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(load_bf16(i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16(i), _mm256_loadu_ps(x + i), acc[0]);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
    return s;
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * k), _mm256_loadu_ps(b + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

namespace {
float dot_f32_row(const void* w, const void* x, int64_t n) {
    return dot_f32(static_cast<const float*>(w), static_cast<const float*>(x), n);
}
}  // namespace

void add_tile_kernels(ggml_type t, mul_mat_kernel& k);

namespace {
mul_mat_kernel single_token_kernel(ggml_type t) {
    switch (t) {
        case ggml_type::f32: return {act_format::f32, dot_f32_row};
        case ggml_type::f16: return {act_format::f32, dot_f16};
        case ggml_type::bf16: return {act_format::f32, dot_bf16};
        case ggml_type::q4_0: return {act_format::q8_32, dot_q4_0};
        case ggml_type::q8_0: return {act_format::q8_32, dot_q8_0};
        case ggml_type::q4_k: return {act_format::q8_k, dot_q4_k};
        case ggml_type::q6_k: return {act_format::q8_k, dot_q6_k};
        // Dots filled in by set_legacy_kernels (legacy_dots_x86.h) and add_tile_kernels.
        case ggml_type::q4_1:
        case ggml_type::q5_0:
        case ggml_type::q5_1: return {act_format::q8_32, nullptr};
        case ggml_type::q2_k:
        case ggml_type::q3_k:
        case ggml_type::q5_k: return {act_format::q8_k, nullptr};
        default: return {};
    }
}
}  // namespace

mul_mat_kernel mul_mat_for(ggml_type t) {
    mul_mat_kernel k = single_token_kernel(t);
    set_legacy_kernels<isa_avx2>(t, k);
    add_tile_kernels(t, k);
    return k;
}

}  // namespace edgellm::kernels::cpu::avx2_detail
