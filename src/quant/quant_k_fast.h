// Per-ISA builds of the fast k-quant row quantizers (quant_k_fast*.cpp). quantize_row_q2_k ..
// quantize_row_q6_k pick one at run time; tests and benchmarks call a build directly.
#pragma once
#include <cstdint>

#include "quant/blocks.h"

namespace edgellm {

// One build of the five quantizers; each is bit-identical to quantize_row_q*_k_ref.
struct kquant_row_fns {
    const char* name;
    void (*q2_k)(const float* x, q2_k_block* y, int64_t n);
    void (*q3_k)(const float* x, q3_k_block* y, int64_t n);
    void (*q4_k)(const float* x, q4_k_block* y, int64_t n);
    void (*q5_k)(const float* x, q5_k_block* y, int64_t n);
    void (*q6_k)(const float* x, q6_k_block* y, int64_t n);
};

// The portable build (GCC/Clang vector extensions at the baseline ISA); always available.
const kquant_row_fns& kquant_generic_fns();
// The AVX2 and AVX-512 builds; null when not compiled in (non-x86) or the CPU lacks the ISA.
const kquant_row_fns* kquant_avx2_fns();
const kquant_row_fns* kquant_avx512_fns();
// The build quantize_row_q*_k use: the widest available (AVX-512, AVX2, portable).
const kquant_row_fns& kquant_best_fns();

}  // namespace edgellm
