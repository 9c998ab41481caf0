// The CPU op set the engine is built from. Each op has a plain scalar reference in
// src/kernels/ref/ and fast SIMD variants in src/kernels/cpu/ picked at run time; setting
// EDGELLM_FORCE_REF=1 (or calling set_force_reference(true)) routes every call to the reference.
// Layouts are row-major; shapes are given in the comments as [outer][inner].
#pragma once
#include <cstddef>
#include <cstdint>

#include "quant/ggml_type.h"

namespace edgellm::kernels {

enum class rope_mode { normal = 0, neox = 2 };  // numbering as ggml's rope "mode"

// Which implementation family serves calls (for reports and tests).
enum class impl { reference, avx2, avx512, neon, generic };
impl active_impl();
const char* impl_name(impl i);
void set_force_reference(bool on);  // also forced by env EDGELLM_FORCE_REF=1

// Batch-invariant products (--deterministic, as the batch-invariant kernels of SGLang / vLLM):
// mul_mat and mul_mat_packed compute every token row with the kernel call, activation format and
// reduction order they use for a product of one token, so a row's result does not depend on how
// many other rows share the call (decode batches, prefill chunks). Costs the multi-token tiles'
// speed in prefill. Set per calling thread: model::forward_pass turns it on for the passes of a
// deterministic session (batch_invariant_scope).
void set_batch_invariant(bool on);
bool batch_invariant();
class batch_invariant_scope {
public:
    explicit batch_invariant_scope(bool on) : prev_(batch_invariant()) { set_batch_invariant(on); }
    ~batch_invariant_scope() { set_batch_invariant(prev_); }
    batch_invariant_scope(const batch_invariant_scope&) = delete;
    batch_invariant_scope& operator=(const batch_invariant_scope&) = delete;

private:
    bool prev_;
};

// y[t][r] = sum_c w[r][c] * x[t][c]
//   w: [n_rows][n_cols] of type wt (each row row_size(wt, n_cols) bytes)
//   x: [n_tokens][n_cols] f32, y: [n_tokens][n_rows] f32
// n_cols must be a multiple of wt's block size. Work is split across n_threads.
void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x,
             int64_t n_tokens, float* y, int n_threads);

// Repacked weights: the fast path's own layout of a matrix (rows interleaved in groups of 8 so
// one register holds 8 rows' sums; llama.cpp calls this "repack"). packed_size() is the bytes a
// packed copy needs on this CPU, or 0 when the type is not repacked here, the reference path is
// forced, or EDGELLM_NO_REPACK=1: then keep using mul_mat on the original.
size_t packed_size(ggml_type wt, int64_t n_rows, int64_t n_cols);
// Writes the packed copy of w ([n_rows][n_cols] of wt) into dst (packed_size bytes).
void pack_weights(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, void* dst, int n_threads);
// mul_mat over weights written by pack_weights; same contract and results as mul_mat on the
// original (the reference path unpacks and runs the reference product).
void mul_mat_packed(ggml_type wt, const void* packed, int64_t n_rows, int64_t n_cols, const float* x,
                    int64_t n_tokens, float* y, int n_threads);

// y = x / sqrt(mean(x^2) + eps) * weight, for each of n_tokens rows of n.
void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps);

// LayerNorm with bias (BERT): y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, for each of
// n_tokens rows of n; bias may be null. y may equal x (in place). Reference implementation only:
// encoders spend their time in mul_mat, not here.
void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t n, int64_t n_tokens,
                float eps);

// Rotary position embedding in place on x: [n_heads][head_dim] for one token at `pos`.
// Only the first n_rot dims rotate. theta_i = pos * freq_scale * base^(-2i/n_rot) / freq_factors[i]
// (freq_factors may be null: Llama 3.1-style rope_freqs).
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float freq_base,
          float freq_scale, const float* freq_factors, rope_mode mode);

// rope() in two parts, so one position's angle table serves several calls (Q and K, layers that
// share base and scale): rope_angles writes the table of `pos` (cs[2i], cs[2i + 1] = cos, sin of
// theta_i; n_rot floats), rope_rotate applies it. Bit-identical to rope() on the fast path; under
// the forced reference (EDGELLM_FORCE_REF) use rope() itself, which then computes in double.
void rope_angles(int64_t n_rot, int64_t pos, float freq_base, float freq_scale, const float* freq_factors, float* cs);
void rope_rotate(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs, rope_mode mode);

// In place, numerically stable softmax over n values.
void softmax(float* x, int64_t n);

// y = silu(gate) * up, elementwise over n.
void swiglu(const float* gate, const float* up, float* y, int64_t n);

// y = gelu(gate) * up, elementwise over n (GeGLU, Gemma's FFN), with the tanh approximation
// gelu(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) that ggml_gelu uses.
void geglu(const float* gate, const float* up, float* y, int64_t n);

// In place x = gelu(x) with the exact erf form 0.5 x (1 + erf(x / sqrt(2))), HF's "gelu" (BERT's
// non-gated FFN). Reference implementation only.
void gelu(float* x, int64_t n);

// In place x = cap * tanh(x / cap) over n values (Gemma 2's logit soft-capping); cap > 0.
void softcap(float* x, int64_t n, float cap);

// y += x (n elements).
void add(float* y, const float* x, int64_t n);

// The cached keys and values of one layer of one sequence, as the attention kernels read them:
// rows of [n_head_kv][head_dim] elements of `type` (f32 or f16), either contiguous (blocks ==
// nullptr: row j at k + j * row_bytes) or paged (row j in block blocks[j >> block_shift], at
// row j & (2^block_shift - 1) of that block; blocks are block_stride bytes apart from k and v).
struct kv_view {
    const uint8_t* k = nullptr;
    const uint8_t* v = nullptr;
    ggml_type type = ggml_type::f32;
    size_t row_bytes = 0;
    const int32_t* blocks = nullptr;  // block table of the sequence, or nullptr: contiguous
    int block_shift = 0;              // log2 of the rows per block
    size_t block_stride = 0;          // bytes from one block to the next

    size_t offset(int64_t j) const {
        if (!blocks) return static_cast<size_t>(j) * row_bytes;
        return static_cast<size_t>(blocks[j >> block_shift]) * block_stride +
               static_cast<size_t>(j & ((int64_t{1} << block_shift) - 1)) * row_bytes;
    }
    const void* k_row(int64_t j) const { return k + offset(j); }
    const void* v_row(int64_t j) const { return v + offset(j); }
    // Contiguous rows of row_elems elements each.
    static kv_view contiguous(const void* k, const void* v, ggml_type type, int64_t row_elems);
};

// Attention of one query token over n_kv cached positions with grouped-query heads.
//   q:   [n_head][head_dim] f32
//   kv:  rows 0..n_kv-1, each [n_head_kv][head_dim] (f32 or f16)
//   out: [n_head][head_dim] f32; scratch: at least n_kv floats per thread call
// Query head h reads KV head h / (n_head / n_head_kv). Scores are scaled by `scale`.
void attention(const float* q, const kv_view& kv, int64_t n_kv, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, float scale, float* out, float* scratch);

// Flash-style attention of n_q query tokens of one sequence (prefill, draft verification):
// query i ([n_head][head_dim] f32 at q + i * q_stride) attends cache rows 0..n_kv[i]-1 and writes
// [n_head][head_dim] at out + i * out_stride. Keys and values are visited once per call in tiles
// shared by all n_q tokens, with an online softmax (no score buffer over the context). Same
// result as `attention` per query, up to float rounding. KV types as `attention`.
void flash_attention(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* n_kv, int64_t n_q,
                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, float* out, int64_t out_stride);

// The windowed and soft-capped forms of the two attention ops (sliding-window layers, Gemma 2).
// Query i attends cache rows kv_first[i] .. n_kv[i]-1 only (kv_first == nullptr: from row 0;
// llama.cpp's standard window of n_swa keys is kv_first = max(0, pos - n_swa + 1)), and when
// softcap > 0 each scaled score s becomes softcap * tanh(s / softcap) before the softmax.
// kv_first 0 and softcap 0 give exactly `attention` / `flash_attention`. scratch: n_kv floats.
void attention_ext(const float* q, const kv_view& kv, int64_t kv_first, int64_t n_kv, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, float scale, float softcap, float* out, float* scratch);
void flash_attention_ext(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* kv_first,
                         const int64_t* n_kv, int64_t n_q, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                         float scale, float softcap, float* out, int64_t out_stride);

// Dequantizes-free row lookup for embeddings: dst = row `row` of w ([n_rows][n_cols] of wt).
void get_row(ggml_type wt, const void* w, int64_t n_cols, int64_t row, float* dst);

}  // namespace edgellm::kernels
