// Repacked ("x8") weight layouts for the fast CPU matrix product: rows are interleaved in groups
// of 8 so that one 256-bit register holds the partial sums of 8 rows (one 32-bit lane per row)
// and the per-block scales of the 8 rows load as one vector. Each weight type's layout is
// portable code (pack/unpack here, tested by a byte-exact round trip); each ISA provides a gemm
// over one packed group. Not for use outside src/kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu {

// Rows per packed group.
constexpr int k_pack_rows = 8;

// A matrix of n_rows rows packs as n_rows / 8 groups of group_bytes(n_cols) bytes each, followed
// by the last n_rows % 8 rows unchanged (GGUF layout).
struct packed_layout {
    ggml_type type = ggml_type::f32;
    act_format act = act_format::q8_32;  // how the gemm wants its activations prepared
    size_t (*group_bytes)(int64_t n_cols) = nullptr;
    // src: 8 rows in the GGUF layout, row_bytes apart -> dst: one packed group.
    void (*pack)(const void* src, size_t row_bytes, int64_t n_cols, void* dst) = nullptr;
    // The inverse: one packed group -> 8 rows in the GGUF layout (the reference path and tests).
    void (*unpack)(const void* group, int64_t n_cols, void* dst, size_t row_bytes) = nullptr;
};

// The portable layout of a type, or null when it has none.
const packed_layout* packed_layout_for(ggml_type t);

// Per-type layouts (packed_<type>.cpp) and gemms (packed_<type>_<isa>.cpp).
const packed_layout& packed_q4_0_layout();
void packed_q4_0_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q4_0_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
// Q5_0: the Q4_0 layout plus a 32-byte vector of fifth bits per block column (packed_q5_0.cpp);
// its gemms share the Q4_0 ones' code (packed_q4_0_<isa>.cpp).
const packed_layout& packed_q5_0_layout();
void packed_q5_0_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q5_0_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);

// Q4_1: the Q4_0 layout plus the rows' f16 mins after their scales (packed_q4_1.cpp); Q5_1: the
// Q4_1 layout plus Q5_0's fifth-bit vector (same file). Their gemms share the Q4_0 ones' code, the
// min term coming from the activation blocks' sums (NEON: packed_neon.h).
const packed_layout& packed_q4_1_layout();
void packed_q4_1_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q4_1_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);
// A Q5_0 / Q5_1 block's qh (4 bytes, GGUF order) as the 4 bytes row r holds in the x8 fifth-bit
// vector, and back (packed_q5_0.cpp documents the bit order).
void q5_hbits_to_x8(const uint8_t* qh_bytes, uint8_t* out);
void q5_hbits_from_x8(const uint8_t* in, uint8_t* qh_bytes);
const packed_layout& packed_q5_1_layout();
void packed_q5_1_gemm_avx2(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride);
void packed_q5_1_gemm_avx512(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                             float* y, size_t y_stride);

// Packs a whole matrix (groups, then the tail rows copied) into dst of packed_bytes() bytes.
size_t packed_bytes(const packed_layout& l, int64_t n_rows, int64_t n_cols);
void pack_matrix(const packed_layout& l, const void* w, int64_t n_rows, int64_t n_cols, void* dst, int n_threads);

// Multithreaded product over a packed matrix with `gemm` for the groups and ops' plain kernels
// for the tail rows (same contract as mul_mat).
void mul_mat_packed(const isa_ops& ops, const packed_layout& l, packed_gemm_fn gemm, const void* packed,
                    int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens, float* y, int n_threads);

}  // namespace edgellm::kernels::cpu
