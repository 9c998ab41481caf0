// Q6_K x8 packed layout (packed_q6_k.cpp) and its AVX2 / AVX-512 VNNI gemms: the declarations the
// registry in packed.cpp and the ISA tables wire in.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {

// Bytes of one packed Q6_K group per super-block: exactly 8 GGUF blocks (8 * 210).
constexpr size_t k_q6_k_group_block_bytes = 16 + 128 + 1536;

const packed_layout& packed_q6_k_layout();
void packed_q6_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q6_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
// Prefill: two consecutive groups (16 rows, y columns 0-15) in one pass (isa_ops::packed_gemm2_for).
void packed_q6_k_gemm2_avx512(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                              float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
