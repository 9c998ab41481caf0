// F16 and BF16 x8 packed layouts (packed_f16.cpp) and their AVX-512 and AVX2 gemms
// (packed_f16_avx512.cpp, packed_f16_avx2.cpp; NEON: packed_neon.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {

// Columns per interleaved block: 8 rows x 32 two-byte weights = 512 bytes.
constexpr int64_t k_f16_block_cols = 32;

const packed_layout& packed_f16_layout();
const packed_layout& packed_bf16_layout();
void packed_f16_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                            float* y, size_t y_stride);
void packed_bf16_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
void packed_f16_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                          float* y, size_t y_stride);
void packed_bf16_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
