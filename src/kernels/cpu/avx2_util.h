// Inline AVX2 helpers shared by the *_avx2.cpp files (include only from files compiled with
// -mavx2 -mfma -mf16c).
#pragma once
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu::avx2_detail {
// Unnamed namespace: every TU gets its own copy, so no ISA-specific inline definition can be
// merged by the linker into a TU built for another ISA.
namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float f16(fp16_bits h) { return _cvtsh_ss(h); }

// 32 nibbles -> 32 bytes: byte j holds element j (low nibbles are elements 0..15, high 16..31).
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, 0xFF where bit j is set (ggml's bytes_from_bits_32).
inline __m256i bits_to_bytes(const uint8_t* qh) {
    uint32_t x32;
    std::memcpy(&x32, qh, sizeof x32);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x32)), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// Sum of u[i] * s[i] over byte pairs, widened to 8 i32 lanes. u in 0..63 keeps maddubs's i16
// pair sums below saturation (63 * 127 * 2 < 32767).
inline __m256i dot_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Signed x signed via |x| and sign(y, x) (ggml's trick; y never holds -128 here).
inline __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// An i32 vector holding v in lane 0 and zeros elsewhere: seeds a block's integer dot product with
// its offset term (-8 * sum(y) for Q4_0), which keeps the offset out of any scalar dependency chain.
inline __m256i lane0(int32_t v) { return _mm256_setr_epi32(v, 0, 0, 0, 0, 0, 0, 0); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// i16 vector with `lo` in the low 128-bit lane and `hi` in the high one: maddubs keeps lanes,
// so the low lane's products belong to the first 16 elements of a 32-byte load.
inline __m256i scale_pair(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16(short(hi)), _mm_set1_epi16(short(lo)));
}

// The eight 6-bit scales and mins of a Q4_K / Q5_K super-block (quant.h's k4_scale_min for
// j = 0..7) with word operations: bytes 0-3 hold sc[0..3] and bytes 4-7 m[0..3] in their low six
// bits; bytes 8-11 hold the low four bits of sc[4..7] and (high nibble) m[4..7], whose top two
// bits are the top bits of bytes 0-3 and 4-7.
inline void k4_scales_mins(const uint8_t* packed, uint8_t* sc, uint8_t* mn) {
    constexpr uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
    uint32_t u[3];
    std::memcpy(u, packed, sizeof(u));
    const uint32_t s03 = u[0] & low6, m03 = u[1] & low6;
    const uint32_t s47 = (u[2] & low4) | (((u[0] >> 6) & low2) << 4);
    const uint32_t m47 = ((u[2] >> 4) & low4) | (((u[1] >> 6) & low2) << 4);
    std::memcpy(sc, &s03, 4), std::memcpy(sc + 4, &s47, 4);
    std::memcpy(mn, &m03, 4), std::memcpy(mn + 4, &m47, 4);
}

// sum_j mn[j] * (bsums[2j] + bsums[2j+1]) for a Q4_K / Q5_K super-block: mins16 holds mn[0..7]
// as int16, bsums the q8_k block's 16 group sums; pair sums by hadd, products by madd.
inline int k4_mins_dot(__m128i mins16, const int16_t* bsums) {
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8)));
    __m128i m = _mm_madd_epi16(mins16, bs);
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0xB1));
    return _mm_cvtsi128_si32(m);
}

// mn[0..7] widened to int16 for k4_mins_dot.
inline __m128i k4_mins16(const uint8_t* mn) { return _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn))); }

}  // namespace
}  // namespace edgellm::kernels::cpu::avx2_detail
