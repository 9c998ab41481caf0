// Dot products of Q4_1 / Q5_0 / Q5_1 weight rows with 8-bit activation rows (act_q8_32), one
// template for the AVX2 and the AVX-512 VNNI tables. The ISA policy supplies two operations:
//   Isa::dot(seed, u, s)  seed + the sum of u8 x i8 products over groups of four bytes (8 x i32);
//   Isa::high_bit(qh)     the 32 fifth bits of a Q5 block as bytes 0x10 / 0x00.
// Per block the integer dot is sum(q*y) (q unsigned, 0..31), then
//   Q4_1 / Q5_1: x = d*q + m  ->  d*dy*sum(q*y) + m*dy*sum(y)
//   Q5_0:        x = d*(q-16) ->  d*dy*(sum(q*y) - 16*sum(y))
// Include only from *_avx2.cpp / *_avx512.cpp files, after avx2_util.h.
#pragma once
#include <type_traits>

#include "kernels/cpu/avx2_util.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu::avx2_detail {
namespace {

template <class B>
struct legacy_traits;
template <>
struct legacy_traits<q4_1_block> {
    static constexpr int zero = 0;  // subtracted from every stored q
    static constexpr bool has_min = true, has_qh = false;
};
template <>
struct legacy_traits<q5_0_block> {
    static constexpr int zero = 16;
    static constexpr bool has_min = false, has_qh = true;
};
template <>
struct legacy_traits<q5_1_block> {
    static constexpr int zero = 0;
    static constexpr bool has_min = true, has_qh = true;
};

// A block's weights as unsigned bytes, element j in byte j.
template <class Isa, class B>
inline __m256i legacy_bytes(const B& w) {
    const __m256i lo = unpack_nibbles(w.qs);
    if constexpr (legacy_traits<B>::has_qh)
        return _mm256_or_si256(lo, Isa::high_bit(w.qh));
    else
        return lo;
}

// One block against one activation block: acc += d*dy*(q.y - zero*sum(y)), corr += m*dy*sum(y).
template <class Isa, class B>
inline void legacy_step(const B& w, __m256i q, float d, const act_q8_32& a, __m256& acc, float& corr) {
    using tr = legacy_traits<B>;
    const __m256i seed = tr::zero ? lane0(-tr::zero * a.sum) : _mm256_setzero_si256();
    const __m256i p = Isa::dot(seed, q, load256(a.qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(p), acc);
    if constexpr (tr::has_min) corr += f16(w.m) * (a.d * float(a.sum));
}

// One token, two blocks per step into independent accumulators (one FMA chain would bound a
// block to the FMA latency).
template <class Isa, class B>
float dot_legacy_1(const void* wv, const void* av, int64_t n) {
    const auto* w = static_cast<const B*>(wv);
    const auto* a = static_cast<const act_q8_32*>(av);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float corr0 = 0.0f, corr1 = 0.0f;
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        legacy_step<Isa>(w[b], legacy_bytes<Isa>(w[b]), f16(w[b].d), a[b], acc0, corr0);
        legacy_step<Isa>(w[b + 1], legacy_bytes<Isa>(w[b + 1]), f16(w[b + 1].d), a[b + 1], acc1, corr1);
    }
    if (b < nb) legacy_step<Isa>(w[b], legacy_bytes<Isa>(w[b]), f16(w[b].d), a[b], acc0, corr0);
    return hsum(_mm256_add_ps(acc0, acc1)) + (corr0 + corr1);
}

// T tokens (2..4): each weight block is unpacked once and used T times.
template <class Isa, class B, int T>
void dot_legacy_n(const void* wv, const void* av, size_t a_stride, int64_t n, float* y, size_t y_stride) {
    const auto* w = static_cast<const B*>(wv);
    const act_q8_32* a[T];
    for (int t = 0; t < T; ++t)
        a[t] = reinterpret_cast<const act_q8_32*>(static_cast<const uint8_t*>(av) + size_t(t) * a_stride);
    __m256 acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), corr[t] = 0.0f;
    for (int64_t b = 0; b < n / 32; ++b) {
        const __m256i q = legacy_bytes<Isa>(w[b]);
        const float d = f16(w[b].d);
        for (int t = 0; t < T; ++t) legacy_step<Isa>(w[b], q, d, a[t][b], acc[t], corr[t]);
    }
    for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]) + corr[t];
}

// Sets k.dot and k.dot_n[1..3] for Q4_1, Q5_0 and Q5_1; leaves other types alone.
template <class Isa>
void set_legacy_kernels(ggml_type t, mul_mat_kernel& k) {
    auto set = [&k](auto tag) {
        using B = decltype(tag);
        k.act = act_format::q8_32;
        k.dot = dot_legacy_1<Isa, B>;
        k.dot_n[1] = dot_legacy_n<Isa, B, 2>, k.dot_n[2] = dot_legacy_n<Isa, B, 3>, k.dot_n[3] = dot_legacy_n<Isa, B, 4>;
    };
    switch (t) {
        case ggml_type::q4_1: set(q4_1_block{}); break;
        case ggml_type::q5_0: set(q5_0_block{}); break;
        case ggml_type::q5_1: set(q5_1_block{}); break;
        default: break;
    }
}

// The AVX2 policy: maddubs + madd (u <= 31 keeps the i16 pair sums unsaturated).
struct isa_avx2 {
    static __m256i dot(__m256i seed, __m256i u, __m256i s) { return _mm256_add_epi32(seed, dot_u8_i8(u, s)); }
    static __m256i high_bit(const uint8_t* qh) { return _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)); }
};

}  // namespace
}  // namespace edgellm::kernels::cpu::avx2_detail
