// Q3_K and Q2_K x8 packed layouts (packed_q3_k.cpp, packed_q2_k.cpp) and their AVX2 / AVX-512
// VNNI gemms (one code for both: the same 2-bit fields, 16-element sub-blocks).
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

// Q2_K: d[8], dmin[8] (f16), the GGUF scale bytes (4-bit scale | 4-bit min << 4) of 16
// sub-blocks x 8 rows (128), the 2-bit fields as Q3_K's (512): 672 bytes = 8 * 84, the GGUF size.
constexpr size_t k_q2_k_scales_at = 32;
constexpr size_t k_q2_k_q_at = 160;
constexpr size_t k_q2_k_group_block_bytes = 672;

const packed_layout& packed_q3_k_layout();
const packed_layout& packed_q2_k_layout();
void packed_q3_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q3_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
void packed_q2_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q2_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
