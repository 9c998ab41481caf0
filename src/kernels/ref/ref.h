// Plain scalar reference kernels: the oracle every fast kernel is tested against. Same contract
// as the public ops in kernels/kernels.h; single-threaded and written for clarity, not speed.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace edgellm::kernels::ref {

// Dequantizes each weight row with the quant module's dequantize_row and accumulates the dot
// products in double, so the reference carries no activation-quantization or f32 summation error.
void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x,
             int64_t n_tokens, float* y);
void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps);
void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t n, int64_t n_tokens,
                float eps);
void gelu(float* x, int64_t n);
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float freq_base,
          float freq_scale, const float* freq_factors, rope_mode mode);
void softmax(float* x, int64_t n);
void swiglu(const float* gate, const float* up, float* y, int64_t n);
void geglu(const float* gate, const float* up, float* y, int64_t n);
void softcap(float* x, int64_t n, float cap);
void add(float* y, const float* x, int64_t n);
// Elements [first, first + n) of one KV row of type t (f32, f16, q8_0, q4_0) as floats; for the
// quantized types first and n must be whole blocks.
void kv_head_slice(const void* row, ggml_type t, int64_t first, int64_t n, float* dst);
void attention(const float* q, const kv_view& kv, int64_t n_kv, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, float scale, float* out, float* scratch);
// scratch: at least n_kv floats (entries kv_first..n_kv-1 are used).
void attention_ext(const float* q, const kv_view& kv, int64_t kv_first, int64_t n_kv, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, float scale, float softcap, float* out, float* scratch);
void get_row(ggml_type wt, const void* w, int64_t n_cols, int64_t row, float* dst);

}  // namespace edgellm::kernels::ref
