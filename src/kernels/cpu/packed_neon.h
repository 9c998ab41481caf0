// NEON + dotprod gemms over the x8 packed layouts (packed.h): the declarations the aarch64 op
// table (ops_neon.cpp) wires in. Compiled only on aarch64.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {

// One Q4_0 x8 group (packed_q4_0.cpp) times n_tokens act_q8_32 rows; packed_gemm_fn contract.
void packed_q4_0_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
// One Q8_0 x8 group (packed_q8_0.cpp) times n_tokens act_q8_32 rows.
void packed_q8_0_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
// One Q4_K x8 group (packed_q4_k.cpp), and one Q6_K x8 group (packed_q6_k.cpp), times n_tokens
// q8_k rows.
void packed_q4_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q5_0_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
// One Q4_1 / Q5_1 x8 group (packed_q4_1.cpp) times n_tokens act_q8_32 rows (packed_q4_0_neon.cpp).
void packed_q4_1_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q5_1_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q5_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q6_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
// One Q3_K / Q2_K x8 group (packed_q3_k.cpp, packed_q2_k.cpp) times n_tokens q8_k rows
// (packed_q3_k_neon.cpp).
void packed_q3_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q2_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
// One F16 / BF16 x8 group (packed_f16.cpp) times n_tokens f32 rows (packed_f16_neon.cpp).
void packed_f16_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                          float* y, size_t y_stride);
void packed_bf16_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);

}  // namespace edgellm::kernels::cpu
