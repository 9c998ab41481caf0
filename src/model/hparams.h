// Model hyperparameters read from GGUF metadata ("{arch}.*" keys); nothing is hard-coded.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "kernels/kernels.h"

namespace edgellm::model {

// The context a session uses when none is asked for: the model's trained context, capped at this
// (the owner of the rule; the load plan, the server's pool and the memory advice read it).
constexpr int64_t k_default_max_ctx = 4096;
inline int64_t default_ctx(int64_t n_ctx_train) {
    return n_ctx_train > 0 ? (n_ctx_train < k_default_max_ctx ? n_ctx_train : k_default_max_ctx) : k_default_max_ctx;
}

// The FFN's gate activation: SwiGLU (silu) or GeGLU (tanh GELU, Gemma).
enum class ffn_activation { silu, gelu };

// Multi-head Latent Attention (deepseek2), run as llama.cpp runs it ("absorbed"): the KV cache holds
// one row per token shared by every head, [kv_lora_rank RMS-normed latent | qk_rope rotated key],
// so the model is seen as multi-query attention with n_head_kv = 1 and head_dim = kv_lora_rank +
// qk_rope; query head h is [W_kb[h] q_nope[h] | q_rope[h]]; the values are the latent part of the
// same rows, and each head's attention output is projected to v_head dims by W_vb[h].
struct mla_hparams {
    int64_t q_lora_rank = 0;   // {arch}.attention.q_lora_rank; 0: Q is one attn_q projection
    int64_t kv_lora_rank = 0;  // {arch}.attention.kv_lora_rank; 0: not MLA
    int64_t qk_nope = 0;       // per-head key dims without RoPE: key_length_mla - qk_rope
    int64_t qk_rope = 0;       // per-head RoPE dims ({arch}.rope.dimension_count); one key shared by all heads
    int64_t v_head = 0;        // per-head value size (value_length_mla)
    float rope_mscale = 1.0f;  // magnitude of the rotation's cos / sin (llama.cpp's YaRN attn_factor)
    bool enabled() const { return kv_lora_rank > 0; }
    int64_t k_head() const { return qk_nope + qk_rope; }  // per-head query / key size before absorption
};

// How a Mixture-of-Experts router turns its logits into expert probabilities (llama.cpp's
// expert_gating_func: 1 softmax (DeepSeek V2), 2 sigmoid (V3)).
enum class moe_gating { softmax, sigmoid };

// Mixture-of-Experts FFN (deepseek2): layers il >= n_dense_lead route each token to n_expert_used
// of n_expert SwiGLU experts, plus n_expert_shared always-on experts fused into one FFN.
struct moe_hparams {
    int64_t n_expert = 0;          // {arch}.expert_count; 0: no MoE layers
    int64_t n_expert_used = 0;     // {arch}.expert_used_count
    int64_t n_expert_shared = 0;   // {arch}.expert_shared_count
    int64_t n_ff_exp = 0;          // {arch}.expert_feed_forward_length
    int64_t n_dense_lead = 0;      // {arch}.leading_dense_block_count: the first layers have a dense FFN
    float weights_scale = 0.0f;    // {arch}.expert_weights_scale; 0 or 1: the weights are not scaled
    bool weights_norm = false;     // {arch}.expert_weights_norm: the chosen weights are divided by their sum
    moe_gating gating = moe_gating::softmax;
    int64_t n_group = 0;           // {arch}.expert_group_count; > 1: only experts of the best groups compete
    int64_t n_group_used = 0;      // {arch}.expert_group_used_count
    bool is_moe_layer(int64_t il) const { return n_expert > 0 && il >= n_dense_lead; }
};

struct model_hparams {
    std::string arch;           // general.architecture ("llama", "qwen2", "qwen3", "gemma2" ...)
    std::string name;           // general.name (may be empty)
    int64_t n_layer = 0;        // {arch}.block_count
    int64_t n_embd = 0;         // {arch}.embedding_length
    int64_t n_head = 0;         // {arch}.attention.head_count
    int64_t n_head_kv = 0;      // {arch}.attention.head_count_kv (defaults to n_head: no GQA)
    int64_t head_dim = 0;       // {arch}.attention.key_length, else n_embd / n_head
    int64_t head_dim_v = 0;     // {arch}.attention.value_length, else head_dim (must equal head_dim unless MLA)
    int64_t n_ff = 0;           // {arch}.feed_forward_length
    int64_t n_vocab = 0;        // rows of token_embd.weight
    int64_t n_ctx_train = 0;    // {arch}.context_length
    int64_t n_rot = 0;          // {arch}.rope.dimension_count, else head_dim
    float rms_eps = 1e-5f;      // {arch}.attention.layer_norm_rms_epsilon
    float rope_freq_base = 10000.0f;  // {arch}.rope.freq_base
    float rope_freq_scale = 1.0f;     // 1 / {arch}.rope.scaling.factor for linear scaling and YaRN
    bool rope_yarn = false;           // {arch}.rope.scaling.type yarn (implemented for MLA models only)
    int64_t n_ctx_orig_yarn = 0;      // {arch}.rope.scaling.original_context_length, else n_ctx_train
    kernels::rope_mode rope = kernels::rope_mode::normal;  // set by the architecture
    bool tied_embeddings = false;     // output.weight absent: logits reuse token_embd.weight
    int64_t n_swa = 0;                // {arch}.attention.sliding_window; 0: full attention
    // Which layers use the window (when n_swa > 0): 0: every layer (Mistral, Phi-3); p > 0: layer
    // il when il % p < p - 1 (llama.cpp's swa pattern: Gemma 2 p = 2, Gemma 3 p = 6).
    int64_t swa_pattern = 0;
    float rope_freq_base_swa = 0.0f;  // RoPE base of windowed layers (Gemma 3: 10000); 0: rope_freq_base
    float rope_freq_scale_swa = 0.0f; // RoPE scale of windowed layers; 0: rope_freq_scale

    // Set by the architecture (arch_def::adjust_hparams); the defaults are the llama-style decoder.
    float embd_scale = 1.0f;          // token embeddings are multiplied by this (Gemma: sqrt(n_embd))
    ffn_activation ffn_act = ffn_activation::silu;
    float attn_scale = 0.0f;          // attention score scale; 0: 1 / sqrt(head_dim)
    bool prescale_q = false;          // apply attn_scale to Q before the dot products (llama.cpp's order for Gemma)
    float attn_softcap = 0.0f;        // > 0: scores s -> c tanh(s / c) before the softmax (Gemma 2)
    float final_softcap = 0.0f;       // > 0: logits capped the same way (Gemma 2)
    // Encoders (bert): bidirectional attention, absolute positions instead of RoPE, LayerNorm with
    // bias after each residual add (post-norm), a non-gated FFN (up, activation, down; exact erf GELU).
    bool causal = true;               // {arch}.attention.causal; false: every token sees its whole sequence
    bool use_rope = true;
    bool post_layer_norm = false;
    bool ffn_gated = true;
    float norm_eps = 1e-12f;          // {arch}.attention.layer_norm_epsilon (LayerNorm models)
    // {arch}.pooling_type as llama.cpp numbers it (0 none, 1 mean, 2 cls, 3 last, 4 rank); -1: absent.
    int pooling_type = -1;
    mla_hparams mla;                  // Multi-head Latent Attention (deepseek2); off by default
    moe_hparams moe;                  // Mixture-of-Experts FFN (deepseek2); off by default

    // Special tokens (tokenizer.ggml.*), -1 when absent.
    int32_t bos_id = -1;
    int32_t eos_id = -1;
    int32_t eot_id = -1;
    int32_t eom_id = -1;

    int64_t q_dim() const { return n_head * head_dim; }      // width of the Q projection
    int64_t kv_dim() const { return n_head_kv * head_dim; }  // width of the K and V projections
    // Rows of kv_dim() elements the KV cache holds per token and layer: K and V, or for MLA only the
    // K row (the latent + rope key row; the values are its latent part, see mla_hparams).
    int64_t kv_rows_per_token() const { return mla.enabled() ? 1 : 2; }
    bool is_swa_layer(int64_t il) const {
        return n_swa > 0 && (swa_pattern <= 0 || il % swa_pattern < swa_pattern - 1);
    }
    int64_t window(int64_t il) const { return is_swa_layer(il) ? n_swa : 0; }  // 0: full attention
    float layer_rope_base(int64_t il) const {
        return is_swa_layer(il) && rope_freq_base_swa > 0.0f ? rope_freq_base_swa : rope_freq_base;
    }
    float layer_rope_scale(int64_t il) const {
        return is_swa_layer(il) && rope_freq_scale_swa > 0.0f ? rope_freq_scale_swa : rope_freq_scale;
    }
    float score_scale() const { return attn_scale > 0.0f ? attn_scale : 1.0f / std::sqrt(float(head_dim)); }
    bool is_end_of_generation(int32_t token) const {
        return token >= 0 && (token == eos_id || token == eot_id || token == eom_id);
    }
};

// Reads and validates the hyperparameters of `arch` (consistency: heads divide, GQA groups
// whole, rope dims even ...). n_vocab and tied_embeddings are filled from the tensors.
// Throws edgellm::error naming the key that is missing or wrong.
model_hparams read_hparams(const gguf::file& f, const std::string& arch);

}  // namespace edgellm::model
