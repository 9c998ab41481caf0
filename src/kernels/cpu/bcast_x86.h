// The 4 bytes at p broadcast to every 32-bit lane: the activation operand of the x86 gemms'
// vpdpbusd / maddubs (one owner for the *_avx2 / *_avx512 packed gemms). Include from those files only.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace edgellm::kernels::cpu {
// Unnamed namespace: each ISA's TU keeps its own copy (see avx2_util.h).
namespace {

inline __m256i bcast4(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

#if defined(__AVX512F__)
inline __m512i bcast4z(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
#endif

}  // namespace
}  // namespace edgellm::kernels::cpu
