// Q3_K x8 packed layout (packed_q3_k.cpp) and its AVX2 / AVX-512 VNNI gemms.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {

// Per super-block column: d[8] (f16), 16 signed scales x 8 rows as bytes (128), the 2-bit
// fields (512) and the high bits (256): 912 bytes against 8 * 110 = 880 (+3.6%, the 6-bit scales
// stored as bytes).
constexpr size_t k_q3_k_scales_at = 16;
constexpr size_t k_q3_k_q_at = 144;
constexpr size_t k_q3_k_h_at = 656;
constexpr size_t k_q3_k_group_block_bytes = 912;

const packed_layout& packed_q3_k_layout();
void packed_q3_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q3_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
