// x86 helper for the packed layouts whose weights have a fifth bit stored apart from the nibbles
// (Q5_0 x8, Q5_K x8): the high bits of several nibble vectors share one byte vector, one bit
// each, and hbit4<P> moves bit P of every byte to bit 4 (0x10 or 0), ready to OR onto a nibble.
// 16-bit shifts move bits across the byte boundary too, but the mask keeps only bit 4 of each
// byte, which came from bit P of that same byte. Include from *_avx2 / *_avx512 files only.
#pragma once
#include <immintrin.h>

namespace edgellm::kernels::cpu {
// Unnamed namespace: each ISA's TU keeps its own copy (see avx2_util.h).
namespace {

template <int P>
inline __m256i hbit4(__m256i h) {
    static_assert(P >= 0 && P < 8);
    const __m256i m = _mm256_set1_epi8(0x10);
    if constexpr (P < 4) {
        return _mm256_and_si256(_mm256_slli_epi16(h, 4 - P), m);
    } else if constexpr (P == 4) {
        return _mm256_and_si256(h, m);
    } else {
        return _mm256_and_si256(_mm256_srli_epi16(h, P - 4), m);
    }
}

}  // namespace
}  // namespace edgellm::kernels::cpu
