// x86 helper for the packed layouts whose weights have a fifth bit stored apart from the nibbles
// (Q5_0 x8, Q5_K x8, Q3_K x8): the high bits of several nibble vectors share one byte vector, one bit
// each, and hbit4<P> moves bit P of every byte to bit 4 (0x10 or 0), ready to OR onto a nibble
// (bit_to<P, 2> likewise onto the 2-bit fields of Q3_K x8).
// 16-bit shifts move bits across the byte boundary too, but the mask keeps only bit 4 of each
// byte, which came from bit P of that same byte. Include from *_avx2 / *_avx512 files only.
#pragma once
#include <immintrin.h>

namespace edgellm::kernels::cpu {
// Unnamed namespace: each ISA's TU keeps its own copy (see avx2_util.h).
namespace {

// Bit P of every byte moved to bit To (1 << To or 0).
template <int P, int To>
inline __m256i bit_to(__m256i h) {
    static_assert(P >= 0 && P < 8 && To >= 0 && To < 8);
    const __m256i m = _mm256_set1_epi8(char(1 << To));
    if constexpr (P < To) {
        return _mm256_and_si256(_mm256_slli_epi16(h, To - P), m);
    } else if constexpr (P == To) {
        return _mm256_and_si256(h, m);
    } else {
        return _mm256_and_si256(_mm256_srli_epi16(h, P - To), m);
    }
}

template <int P>
inline __m256i hbit4(__m256i h) {
    return bit_to<P, 4>(h);
}

}  // namespace
}  // namespace edgellm::kernels::cpu
