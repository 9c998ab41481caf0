// Model weights: views into the memory-mapped GGUF (zero copy) plus the loader that finds,
// shape-checks and type-checks every tensor an architecture asks for.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/hparams.h"

namespace edgellm::model {

// A 2-D weight used in place: n_rows rows of n_cols elements of `type` (ggml ne = {n_cols, n_rows}).
// After model::repack() it may point at the CPU kernels' packed copy instead (packed == true).
struct matrix {
    ggml_type type = ggml_type::f32;
    const void* data = nullptr;  // into the file mapping, or the packed copy
    int64_t n_rows = 0;
    int64_t n_cols = 0;
    bool packed = false;
    explicit operator bool() const { return data != nullptr; }
};

// y[n_tokens][n_rows] = x[n_tokens][n_cols] times the matrix (packed or not).
void mul_mat(const matrix& w, const float* x, int64_t n_tokens, float* y, int n_threads);

// Rows [first, first + n) of an unpacked matrix: rows are contiguous, so this is a pointer offset
// (fused projections, one expert or one head of a 3-D tensor).
matrix row_slice(const matrix& m, int64_t first, int64_t n);

// Multi-head Latent Attention weights (deepseek2; see mla_hparams). k_head = qk_nope + qk_rope.
struct mla_weights {
    matrix wq_a;                       // [q_lora_rank][n_embd], with Q LoRA (else layer_weights::wq)
    const float* q_a_norm = nullptr;   // [q_lora_rank]
    matrix wq_b;                       // [n_head * k_head][q_lora_rank]
    matrix wkv_a;                      // [kv_lora_rank + qk_rope][n_embd]: latent, then the shared rope key
    const float* kv_a_norm = nullptr;  // [kv_lora_rank]
    std::vector<matrix> wk_b;          // [n_head] of [kv_lora_rank][qk_nope]: absorbs q_nope into the latent
    std::vector<matrix> wv_b;          // [n_head] of [v_head][kv_lora_rank]: latent to the head's values
};

// Mixture-of-Experts FFN weights (deepseek2; see moe_hparams).
struct moe_weights {
    matrix gate_inp;                   // [n_expert][n_embd] router
    const float* probs_bias = nullptr; // [n_expert], optional selection bias (exp_probs_b, DeepSeek V3)
    std::vector<matrix> gate;          // [n_expert] of [n_ff_exp][n_embd] (slices of ffn_gate_exps)
    std::vector<matrix> up;            // [n_expert] of [n_ff_exp][n_embd] (slices of ffn_up_exps)
    std::vector<matrix> down;          // [n_expert] of [n_embd][n_ff_exp] (slices of ffn_down_exps)
    matrix gate_shexp;                 // [n_ff_exp * n_expert_shared][n_embd], optional shared experts
    matrix up_shexp;                   // [n_ff_exp * n_expert_shared][n_embd]
    matrix down_shexp;                 // [n_embd][n_ff_exp * n_expert_shared]
};

struct layer_weights {
    const float* attn_norm = nullptr;  // [n_embd]
    matrix wq;                         // [q_dim][n_embd]
    matrix wk;                         // [kv_dim][n_embd]
    matrix wv;                         // [kv_dim][n_embd]
    matrix wo;                         // [n_embd][q_dim]
    const float* bq = nullptr;         // [q_dim], optional (qwen2)
    const float* bk = nullptr;         // [kv_dim], optional (qwen2)
    const float* bv = nullptr;         // [kv_dim], optional (qwen2)
    const float* q_norm = nullptr;     // [head_dim], optional per-head RMSNorm of Q (qwen3)
    const float* k_norm = nullptr;     // [head_dim], optional per-head RMSNorm of K (qwen3)
    const float* post_attn_norm = nullptr;  // [n_embd], optional RMSNorm of the attention output (gemma2/3)
    const float* ffn_norm = nullptr;   // [n_embd]
    matrix ffn_gate;                   // [n_ff][n_embd]
    matrix ffn_up;                     // [n_ff][n_embd]
    matrix ffn_down;                   // [n_embd][n_ff]
    const float* post_ffn_norm = nullptr;   // [n_embd], optional RMSNorm of the FFN output (gemma2/3)
    // Encoders (bert, post-norm): output bias, two LayerNorms with bias, FFN biases.
    const float* bo = nullptr;               // [n_embd], optional attention output bias
    const float* attn_out_norm = nullptr;    // [n_embd] LayerNorm after the attention residual
    const float* attn_out_norm_b = nullptr;  // [n_embd]
    const float* ffn_up_b = nullptr;         // [n_ff], optional
    const float* ffn_down_b = nullptr;       // [n_embd], optional
    const float* layer_out_norm = nullptr;   // [n_embd] LayerNorm after the FFN residual
    const float* layer_out_norm_b = nullptr; // [n_embd]
    mla_weights mla;                   // set when hparams.mla is enabled (then wk, wv are unused)
    moe_weights moe;                   // set on MoE layers (then ffn_gate, ffn_up, ffn_down are unused)
};

struct model_weights {
    matrix token_embd;                  // [n_vocab][n_embd]
    const float* output_norm = nullptr; // [n_embd]
    matrix output;                      // [n_vocab][n_embd]; == token_embd when embeddings are tied
    const float* rope_freqs = nullptr;  // [n_rot / 2], optional Llama 3.1 per-dimension divisors
    // Encoders (bert): absolute position and token-type embeddings added to the token's, then a
    // LayerNorm with bias. output_norm and output stay empty: an encoder's output is its hidden states.
    matrix pos_embd;                    // [n_ctx_train][n_embd]
    matrix token_types;                 // [n_token_types][n_embd]
    const float* token_embd_norm = nullptr;    // [n_embd]
    const float* token_embd_norm_b = nullptr;  // [n_embd]
    // Sequence classification head (optional): the first token's state h, then
    // logits = W_out act(W_cls h + b_cls) + b_out (the act(W_cls ...) stage only when cls is present).
    matrix cls;                         // [n_embd][n_embd], optional (BERT's pooler / DistilBERT's pre_classifier)
    const float* cls_b = nullptr;       // [n_embd]
    matrix cls_out;                     // [n_labels][n_embd], optional
    const float* cls_out_b = nullptr;   // [n_labels]
    std::vector<layer_weights> layers;  // [n_layer]
    uint64_t n_matrix_bytes = 0;        // bytes of all matrices (what one token's forward pass reads)
};

// Looks tensors up by name and checks shape and type. 1-D tensors (norms, biases) are converted
// to f32 into storage the loader's owner keeps; matrices stay in the mapping.
class weight_loader {
public:
    weight_loader(const gguf::file& f, std::vector<std::vector<float>>& owned, uint64_t& n_matrix_bytes)
        : file_(f), owned_(owned), n_matrix_bytes_(n_matrix_bytes) {}

    // ggml order: n_cols (ne[0], contiguous) then n_rows (ne[1]).
    matrix require_matrix(const std::string& name, int64_t n_cols, int64_t n_rows);
    std::optional<matrix> optional_matrix(const std::string& name, int64_t n_cols, int64_t n_rows);
    const float* require_vector(const std::string& name, int64_t n);
    const float* optional_vector(const std::string& name, int64_t n);  // nullptr when absent
    bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }
    const gguf::file& file() const { return file_; }
    // A 3-D tensor of n_mats matrices of [n_rows][n_cols] (ggml ne = {n_cols, n_rows, n_mats}),
    // returned as one matrix of n_mats * n_rows rows; matrix i is row_slice(m, i * n_rows, n_rows).
    matrix require_stacked(const std::string& name, int64_t n_cols, int64_t n_rows, int64_t n_mats);
    // An f32 matrix the loader's owner keeps (weights rearranged at load time).
    matrix owned_matrix(std::vector<float> data, int64_t n_cols, int64_t n_rows);
    // Dequantized rows [first, first + n) of m, as f32 ([n][m.n_cols]).
    static std::vector<float> dequantize_rows(const matrix& m, int64_t first, int64_t n);

private:
    const gguf::tensor_info& require(const std::string& name);
    void check_shape(const gguf::tensor_info& t, int64_t ne0, int64_t ne1, int n_dims, int64_t ne2 = 1);
    matrix to_matrix(const gguf::tensor_info& t, int64_t n_cols, int64_t n_rows, int64_t n_mats = 1);
    const float* to_vector(const gguf::tensor_info& t, int64_t n);

    const gguf::file& file_;
    std::vector<std::vector<float>>& owned_;
    uint64_t& n_matrix_bytes_;
};

// "blk.3.attn_q.weight"
std::string layer_tensor_name(int il, const char* suffix);

// The tensors every llama-style decoder layer has (norms, Q/K/V/O, SwiGLU FFN).
void load_common_layer(weight_loader& loader, const model_hparams& hp, int il, layer_weights& lw);

}  // namespace edgellm::model
