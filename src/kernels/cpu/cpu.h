// Internal interface between the dispatcher (kernels.cpp), the ISA-neutral drivers in cpu/ and the
// per-ISA files (*_avx2.cpp, *_avx512.cpp, *_neon.cpp). Not for use outside src/kernels.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"
#include "quant/blocks.h"

namespace edgellm::kernels::cpu {

// Activation row format for the 32-element weight types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0). Not a
// ggml block: the scale is kept as f32 (ggml's q8_0/q8_1 round it to f16) and the integer sum of
// qs is precomputed, so the offset (Q4_0: -8, Q5_0: -16) is folded into the integer dot product
// and the min of Q4_1/Q5_1 costs one multiply per block.
struct act_q8_32 {
    float d;
    int32_t sum;
    int8_t qs[32];
};
static_assert(sizeof(act_q8_32) == 40);

// How mul_mat prepares the activations for a weight type. bf16_pair (BF16 weights on CPUs with
// AVX-512 BF16): each float x is split into hi = bf16(x) and lo = bf16(x - hi), so two bf16 dot
// instructions give the product with f32 activations to about 2^-17 of each term; the row holds,
// per 32 elements (zero-padded at the end), hi[32] then lo[32] (k_bf16_pair_chunk_bytes).
// f32_even_odd (BF16 weights on AVX-512 CPUs): floats in the order a 32-bit lane split of 32
// bf16 weights yields, per 32 elements (zero-padded at the end) the 16 even-indexed ones then
// the 16 odd-indexed ones (k_f32_even_odd_chunk_bytes), so the weights need no widening shuffle.
enum class act_format { f32, q8_32, q8_k, bf16_pair, f32_even_odd };
constexpr size_t k_bf16_pair_chunk_bytes = 2 * 32 * sizeof(uint16_t);
constexpr size_t k_f32_even_odd_chunk_bytes = 32 * sizeof(float);

// Dot product of one weight row (n_cols elements of the weight type) with one prepared
// activation row.
using dot_fn = float (*)(const void* w_row, const void* act_row, int64_t n_cols);
// Converts n floats into the activation format (n a multiple of its block size).
using quantize_act_fn = void (*)(const float* x, void* dst, int64_t n);

// The same for T = i+1 activation rows at once (rows act_stride bytes apart), writing
// y[t * y_stride] for t < T: each weight block is unpacked once for all T tokens (prefill).
using dot_multi_fn = void (*)(const void* w_row, const void* act, size_t act_stride, int64_t n_cols, float* y,
                              size_t y_stride);
constexpr int k_max_tile_tokens = 4;

struct mul_mat_kernel {
    act_format act = act_format::f32;
    dot_fn dot = nullptr;  // null: no fast path for this type on this ISA
    // dot_n[i] handles i+1 tokens; dot_n[0] is unused (dot serves one token); null: use dot.
    dot_multi_fn dot_n[k_max_tile_tokens] = {};
};

// One repacked group of 8 weight rows (see packed.h) times n_tokens (>= 1) prepared activation
// rows, act_stride bytes apart: y[t * y_stride + r] = dot(row r of the group, activation row t).
using packed_gemm_fn = void (*)(const void* group, const void* act, size_t act_stride, int64_t n_tokens,
                                int64_t n_cols, float* y, size_t y_stride);

// kernels::flash_attention_ext (flash_attn_impl.h), compiled once per ISA. kv_first may be null.
using flash_attention_fn = void (*)(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* kv_first,
                                    const int64_t* n_kv, int64_t n_q, int64_t n_head, int64_t n_head_kv,
                                    int64_t head_dim, float scale, float softcap, float* out, int64_t out_stride);
void flash_attention_generic(const float*, int64_t, const kv_view&, const int64_t*, const int64_t*, int64_t, int64_t, int64_t,
                             int64_t, float, float, float*, int64_t);
void flash_attention_avx2(const float*, int64_t, const kv_view&, const int64_t*, const int64_t*, int64_t, int64_t, int64_t,
                          int64_t, float, float, float*, int64_t);
void flash_attention_avx512(const float*, int64_t, const kv_view&, const int64_t*, const int64_t*, int64_t, int64_t, int64_t,
                            int64_t, float, float, float*, int64_t);
void flash_attention_neon(const float*, int64_t, const kv_view&, const int64_t*, const int64_t*, int64_t, int64_t, int64_t,
                          int64_t, float, float, float*, int64_t);

// The op set one ISA provides. Null members fall back to the generic (portable) version.
struct isa_ops {
    impl id = impl::generic;
    mul_mat_kernel (*mul_mat_for)(ggml_type) = nullptr;
    // Optional: the kernel for products of more than one token when it is not mul_mat_for's (a
    // null dot: the same); its act format's converter must be in this table too.
    mul_mat_kernel (*mul_mat_batch_for)(ggml_type) = nullptr;
    // Gemm over the packed layout of a type (packed.h); null: this ISA does not use packing for it.
    packed_gemm_fn (*packed_gemm_for)(ggml_type) = nullptr;
    // Optional, prefill: a gemm over two consecutive groups at once (16 rows; same contract, y
    // columns 0-15), giving each row the same result as packed_gemm_for's; null: none.
    packed_gemm_fn (*packed_gemm2_for)(ggml_type) = nullptr;
    quantize_act_fn quantize_q8_32 = nullptr;
    quantize_act_fn quantize_q8_k = nullptr;
    // No generic versions of these two: only the tables whose kernels use them set them.
    quantize_act_fn quantize_bf16_pair = nullptr;
    quantize_act_fn convert_f32_even_odd = nullptr;
    float (*dot_f32)(const float* a, const float* b, int64_t n) = nullptr;
    void (*rms_norm)(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) = nullptr;
    void (*softmax)(float* x, int64_t n) = nullptr;
    void (*swiglu)(const float* gate, const float* up, float* y, int64_t n) = nullptr;
    void (*geglu)(const float* gate, const float* up, float* y, int64_t n) = nullptr;
    void (*softcap)(float* x, int64_t n, float cap) = nullptr;
    void (*add)(float* y, const float* x, int64_t n) = nullptr;
    void (*attention)(const float* q, const kv_view& kv, int64_t n_kv, int64_t n_head, int64_t n_head_kv,
                      int64_t head_dim, float scale, float* out, float* scratch) = nullptr;
    flash_attention_fn flash_attention = nullptr;
};

// Per-ISA tables; each returns null when compiled out or the CPU lacks the ISA.
const isa_ops* avx2_ops();
const isa_ops* avx512_ops();
const isa_ops* neon_ops();
// The portable table (always available): scalar activation quantizers and float loops.
const isa_ops& generic_ops();

// Converts n_tokens rows of x into activation format f (quantizing across n_threads) and returns
// them with their row size; f32 returns x itself. The buffer is per calling thread and valid until
// its next call.
const uint8_t* prepare_activations(const isa_ops& ops, act_format f, const float* x, int64_t n_tokens, int64_t n_cols,
                                   int n_threads, size_t* row_bytes);

// Multithreaded, tiled matrix product using `ops` (see kernels.h for the contract).
void mul_mat(const isa_ops& ops, ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols,
             const float* x, int64_t n_tokens, float* y, int n_threads);
// RoPE with the angle table computed once per call (the same for every head).
void rope_angles(int64_t n_rot, int64_t pos, float freq_base, float freq_scale, const float* freq_factors, float* cs);
void rope_rotate(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs, rope_mode mode);
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float freq_base,
          float freq_scale, const float* freq_factors, rope_mode mode);

}  // namespace edgellm::kernels::cpu
