// Q8_0 x8 packed layout (packed_q8_0.cpp) and its AVX2 / AVX-512 VNNI gemms: the declarations the
// registry in packed.cpp and the ISA tables wire in.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {

// Bytes of one packed Q8_0 group per block column: exactly 8 GGUF blocks (8 * 34).
constexpr size_t k_q8_0_group_block_bytes = 16 + 256;

const packed_layout& packed_q8_0_layout();
void packed_q8_0_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q8_0_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
