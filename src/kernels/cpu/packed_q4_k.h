// Q4_K and Q5_K x8 packed layouts (packed_q4_k.cpp) and their AVX2 / AVX-512 VNNI gemms: the declarations the
// registry in packed.cpp and the ISA tables wire in.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {

// Bytes of one packed Q4_K group per super-block: d[8], dmin[8] (f16), scales and mins as one
// byte each (8 sub-blocks x 8 rows, 64 + 64), 1024 bytes of nibbles. 32 more than 8 GGUF blocks
// (1152) because the 6-bit scales are stored unpacked: +2.8%.
constexpr size_t k_q4_k_scales_at = 32;
constexpr size_t k_q4_k_mins_at = 96;
constexpr size_t k_q4_k_q_at = 160;
constexpr size_t k_q4_k_group_block_bytes = k_q4_k_q_at + 1024;

// Q5_K x8: the Q4_K x8 block followed by the rows' fifth bits, 8 vectors of 32 bytes (one per
// 4-element chunk c: byte 4r + e is byte 4c + e of row r's GGUF qh, whose bit 2j / 2j + 1 is the
// fifth bit of the low / high nibble in q[j][c]). 1440 bytes against 8 * 176 = 1408: +2.3%.
constexpr size_t k_q5_k_qh_at = k_q4_k_group_block_bytes;
constexpr size_t k_q5_k_group_block_bytes = k_q5_k_qh_at + 256;

const packed_layout& packed_q4_k_layout();
const packed_layout& packed_q5_k_layout();
void packed_q4_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q4_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
void packed_q5_k_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q5_k_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
// Prefill: two consecutive groups (16 rows, y columns 0-15) in one pass (packed_gemm_fn contract).
void packed_q4_k_gemm2_avx512(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                              float* y, size_t y_stride);
void packed_q5_k_gemm2_avx512(const void* groups, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                              float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
