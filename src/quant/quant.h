// Reference (scalar, bit-exact with ggml) quantization and dequantization of tensor rows for
// every weight type edgellm reads. Faster kernels must agree with these; tests compare to gguf-py.
#pragma once
#include <cstddef>
#include <cstdint>

#include "quant/blocks.h"
#include "quant/ggml_type.h"

namespace edgellm {

// Converts n elements (a multiple of the type's block size) of type `type` at `src` to floats.
// NaN/Inf scales stored in a file propagate to the output (as in ggml); nothing is rejected.
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K. Other types
// throw edgellm::error("dequantization of X not implemented"); a bad n throws edgellm::error.
void dequantize_row(ggml_type type, const void* src, float* dst, int64_t n);

// Quantizes n floats (a multiple of the block size) into row_size(type, n) bytes at `dst` with
// ggml's reference algorithm (round-to-nearest). Returns the number of bytes written.
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q8_K, and the k-quants
// Q2_K..Q6_K (ggml's reference quantizers without an importance matrix). F16/BF16 keep NaN and
// Inf; block types reject them with edgellm::error naming the element (the per-type functions
// below do not check: their input must be finite).
size_t quantize_row(ggml_type type, const float* src, void* dst, int64_t n);

bool can_dequantize(ggml_type type);
bool can_quantize(ggml_type type);

// Per-type entry points (n is a multiple of the block size). Exposed so kernels and tests can
// call one format directly without the switch.
void dequantize_row_f16(const fp16_bits* x, float* y, int64_t n);
void dequantize_row_bf16(const bf16_bits* x, float* y, int64_t n);
void dequantize_row_q4_0(const q4_0_block* x, float* y, int64_t n);
void dequantize_row_q4_1(const q4_1_block* x, float* y, int64_t n);
void dequantize_row_q5_0(const q5_0_block* x, float* y, int64_t n);
void dequantize_row_q5_1(const q5_1_block* x, float* y, int64_t n);
void dequantize_row_q8_0(const q8_0_block* x, float* y, int64_t n);
void dequantize_row_q8_1(const q8_1_block* x, float* y, int64_t n);
void dequantize_row_q2_k(const q2_k_block* x, float* y, int64_t n);
void dequantize_row_q3_k(const q3_k_block* x, float* y, int64_t n);
void dequantize_row_q4_k(const q4_k_block* x, float* y, int64_t n);
void dequantize_row_q5_k(const q5_k_block* x, float* y, int64_t n);
void dequantize_row_q6_k(const q6_k_block* x, float* y, int64_t n);
void dequantize_row_q8_k(const q8_k_block* x, float* y, int64_t n);

void quantize_row_f16(const float* x, fp16_bits* y, int64_t n);
void quantize_row_bf16(const float* x, bf16_bits* y, int64_t n);
void quantize_row_q4_0(const float* x, q4_0_block* y, int64_t n);
void quantize_row_q4_1(const float* x, q4_1_block* y, int64_t n);
void quantize_row_q5_0(const float* x, q5_0_block* y, int64_t n);
void quantize_row_q5_1(const float* x, q5_1_block* y, int64_t n);
void quantize_row_q8_0(const float* x, q8_0_block* y, int64_t n);
void quantize_row_q8_1(const float* x, q8_1_block* y, int64_t n);
void quantize_row_q8_k(const float* x, q8_k_block* y, int64_t n);
// The k-quants: fast (quant_k_fast*.cpp: SIMD lanes over sub-blocks, run-time ISA choice),
// single-threaded and bit-identical to the _ref versions below for every input.
void quantize_row_q2_k(const float* x, q2_k_block* y, int64_t n);
void quantize_row_q3_k(const float* x, q3_k_block* y, int64_t n);
void quantize_row_q4_k(const float* x, q4_k_block* y, int64_t n);
void quantize_row_q5_k(const float* x, q5_k_block* y, int64_t n);
void quantize_row_q6_k(const float* x, q6_k_block* y, int64_t n);
// The oracle for the above: ggml's scalar quantize_row_*_K_ref (no importance matrix), operation
// for operation (quant_k.cpp). Slow; keep them as they are.
void quantize_row_q2_k_ref(const float* x, q2_k_block* y, int64_t n);
void quantize_row_q3_k_ref(const float* x, q3_k_block* y, int64_t n);
void quantize_row_q4_k_ref(const float* x, q4_k_block* y, int64_t n);
void quantize_row_q5_k_ref(const float* x, q5_k_block* y, int64_t n);
void quantize_row_q6_k_ref(const float* x, q6_k_block* y, int64_t n);

// Unpacks the 6-bit scale and min of sub-block j (0..7) of a q4_k / q5_k block (ggml's
// get_scale_min_k4); kernels need it too.
inline void k4_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Unpacks the 16 signed 6-bit scales of a q3_k block (already offset by -32).
void q3_k_scales(const uint8_t packed[K_SCALE_SIZE], int8_t out[QK_K / 16]);

}  // namespace edgellm
