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

}  // namespace
}  // namespace edgellm::kernels::cpu::avx2_detail
