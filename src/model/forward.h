// The decoder forward pass shared by every architecture. It takes a batch of (token, position,
// sequence) entries, so prefill, decode, several sequences at once (continuous batching) and
// draft verification (speculative decoding) are all the same call.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <span>
#include <vector>

#include "model/gpu_layers.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace edgellm::model {

// Which attention kernel a step uses. auto: flash attention (kernels::flash_attention, K/V tiles
// shared by a run of queries) for runs of two or more tokens of one sequence (prefill, draft
// verification), the per-token kernel for single tokens (decode); on: flash for every token;
// off: the per-token kernel always (the scores of one token over the whole context in a buffer).
enum class flash_attn_mode { automatic, on, off };
const char* flash_attn_name(flash_attn_mode m);
// Parses "auto" / "on" / "off" (also "1"/"0", "true"/"false"); nullopt otherwise.
std::optional<flash_attn_mode> parse_flash_attn(std::string_view s);

struct batch {
    std::vector<int32_t> tokens;      // [n] token ids
    std::vector<int64_t> positions;   // [n] position of each token in its sequence
    std::vector<int32_t> seq_ids;     // [n] KV cache sequence of each token
    std::vector<uint8_t> want_logits; // [n] 1 = return this entry's next-token logits

    void add(int32_t token, int64_t pos, int32_t seq, bool logits) {
        tokens.push_back(token);
        positions.push_back(pos);
        seq_ids.push_back(seq);
        want_logits.push_back(logits ? 1 : 0);
    }
    void clear() {
        tokens.clear();
        positions.clear();
        seq_ids.clear();
        want_logits.clear();
    }
    size_t size() const { return tokens.size(); }
    int64_t n_outputs() const;
};

// Run state of one model: scratch buffers sized once for up to n_batch tokens per step.
class forward_pass {
public:
    forward_pass(const model& m, int64_t n_batch, int64_t n_ctx, int n_threads);

    // Evaluates `b` (split into steps of at most n_batch tokens), writes its keys and values to
    // `kv`, and returns the logits of the entries with want_logits set: [n_outputs][n_vocab] in
    // batch order (valid until the next call). Within a sequence, entries must continue it:
    // the k-th entry of sequence s has position kv.seq_len(s) + k. Bad entries throw edgellm::error.
    std::span<const float> eval(kv_cache& kv, const batch& b);
    // The same pass, returning the final hidden state of every entry instead of logits:
    // [b.size()][n_embd] in batch order (after the final norm of decoders; an encoder's last
    // LayerNorm output), for pooling into embeddings. An encoder (bidirectional attention) needs
    // each sequence whole and new in the batch, and the batch within n_batch tokens.
    std::span<const float> eval_embeddings(kv_cache& kv, const batch& b);

    int64_t n_batch() const { return n_batch_; }
    int n_threads() const { return n_threads_; }
    void set_n_threads(int n) { n_threads_ = n > 0 ? n : 1; }
    // Threads for steps of more than one token (prefill); 0: the same as n_threads.
    int n_threads_batch() const { return n_threads_batch_ > 0 ? n_threads_batch_ : n_threads_; }
    void set_n_threads_batch(int n) { n_threads_batch_ = n > 0 ? n : 0; }
    int threads_for(int64_t n_tokens) const { return n_tokens > 1 ? n_threads_batch() : n_threads_; }
    flash_attn_mode flash_attn() const { return flash_attn_; }
    void set_flash_attn(flash_attn_mode m) { flash_attn_ = m; }
    // Batch-invariant passes (--deterministic): every token's logits are computed exactly as if it
    // were alone in the step (the one-token matrix kernels, kernels::batch_invariant, and the
    // per-token attention kernel whatever flash_attn says), so concurrent greedy output equals
    // single-stream output. CPU layers only: engine refuses it with GPU layers.
    bool deterministic() const { return deterministic_; }
    void set_deterministic(bool on) { deterministic_ = on; }
    // Runs the last layers (and maybe the output layer) on a GPU; the KV cache passed to eval()
    // must then hold one sequence. Null: everything on the CPU.
    void set_gpu(std::unique_ptr<gpu_layers> g) { gpu_ = std::move(g); }
    const gpu_layers* gpu() const { return gpu_.get(); }

private:
    // Checks every entry; returns each sequence's length once the batch is written.
    std::map<int32_t, int64_t> validate(const kv_cache& kv, const batch& b) const;
    std::span<const float> eval_impl(kv_cache& kv, const batch& b, bool hidden);
    // Writes logits of the entries that want them, or (hidden) every entry's final hidden state.
    void eval_step(kv_cache& kv, const batch& b, size_t begin, size_t end, float* out, bool hidden);
    void eval_layer(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt);
    // BERT's post-norm layer: x = LN(x + O(attn(x))), x = LN(x + down(gelu(up(x)))), with biases.
    void eval_encoder_layer(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt);
    // Q, K and V projections of xn_ (plus biases, Q/K norms and RoPE), K and V stored in `kv`;
    // returns Q ([n][q_dim] after RoPE).
    const float* attn_qkv(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt);
    // The same for Multi-head Latent Attention (see mla_hparams): the cached row is the normalised
    // latent and the rotated shared key; the returned Q has the absorbed [n][n_head][head_dim] layout.
    const float* mla_qkv(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt);
    // MLA after attention: each head's attended latent (in attn_) times W_vb[h]; returns [n][n_head * v_head].
    const float* mla_values(int il, int64_t n, int nt);
    // FFN of xn_ into proj_: gated dense (SwiGLU / GeGLU) or Mixture-of-Experts.
    void dense_ffn(const layer_weights& lw, int64_t n, int nt);
    void moe_ffn(const layer_weights& lw, int64_t n, int nt);
    // Causal attention of the step's tokens (q: [n][q_dim] after RoPE) into attn_.
    void attend(int il, const kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt, const float* q);
    // x_ += proj_ (the sub-layer output in proj_), RMS-normalised by post_norm first when set.
    void add_residual(const float* post_norm, int64_t n);

    const model& m_;
    int64_t n_batch_;
    int64_t n_ctx_;
    int n_threads_;
    int n_threads_batch_ = 0;
    flash_attn_mode flash_attn_ = flash_attn_mode::automatic;
    bool deterministic_ = false;
    std::unique_ptr<gpu_layers> gpu_;
    // Scratch, each [n_batch][width]:
    std::vector<float> x_;       // [n_batch][n_embd] residual stream
    std::vector<float> xn_;      // [n_batch][n_embd] normalised input of a sub-layer
    std::vector<float> q_;       // [n_batch][q_dim]
    std::vector<float> q2_;      // [n_batch][q_dim] per-head normalised Q (qwen3)
    std::vector<float> k_;       // [n_batch][kv_dim]
    std::vector<float> k2_;      // [n_batch][kv_dim] per-head normalised K (qwen3)
    std::vector<float> v_;       // [n_batch][kv_dim]
    std::vector<float> attn_;    // [n_batch][q_dim] attention output
    std::vector<float> proj_;    // [n_batch][n_embd] projection back to the residual
    std::vector<float> gate_;    // [n_batch][max(n_ff, shared experts' n_ff)]
    std::vector<float> up_;      // [n_batch][max(n_ff, shared experts' n_ff)]
    // MLA only (k_head = qk_nope + qk_rope):
    std::vector<float> mla_q_;   // [n_batch][n_head * k_head] Q before absorption
    std::vector<float> mla_qa_;  // [n_batch][q_lora_rank] Q LoRA down-projection, then its norm in mla_qa2_
    std::vector<float> mla_qa2_; // [n_batch][q_lora_rank]
    std::vector<float> mla_kv_;  // [n_batch][kv_lora_rank + qk_rope] latent and shared rope key
    std::vector<float> mla_in_;  // [n_batch][max(qk_nope, kv_lora_rank)] one head's rows, gathered
    std::vector<float> mla_out_; // [n_batch][max(kv_lora_rank, v_head)] one head's product
    std::vector<float> mla_v_;   // [n_batch][n_head * v_head] values of every head
    std::vector<float> rope_cs_; // [n_rot] cos and sin of one position
    // RoPE angle tables of the current step, one per (base, scale) its layers use ([n][n_rot]
    // each): layers that share them (all of Llama's; Gemma 3's local and global kinds) compute the
    // trigonometry once per step, not once per layer and per Q and K.
    struct rope_table {
        float base, scale;
        std::vector<float> cs;
    };
    std::vector<rope_table> rope_tables_;
    size_t n_rope_tables_ = 0;  // entries valid for the current step
    // MoE only:
    std::vector<float> router_;  // [n_batch][n_expert] router logits, then probabilities
    std::vector<float> ex_in_;   // [n_batch][n_embd] the rows routed to one expert
    std::vector<float> ex_gate_; // [n_batch][n_ff_exp]
    std::vector<float> ex_up_;   // [n_batch][n_ff_exp]
    std::vector<float> ex_out_;  // [n_batch][n_embd]
    struct routed_row {
        int64_t t;     // token in the step
        float weight;  // the expert's weight for it
    };
    std::vector<std::vector<routed_row>> expert_rows_;  // [n_expert] the step's tokens routed to each expert
    std::vector<float> scores_;  // [n_threads][n_ctx] attention scores per thread
    std::vector<float> logits_;  // [n_outputs][n_vocab], grown on demand
    std::vector<float> hidden_;  // [batch size][n_embd] eval_embeddings' output, grown on demand
    std::map<int32_t, int64_t> seq_end_;  // each sequence's length once the current batch is written
    std::vector<int64_t> n_kv_;  // [n_batch] keys each token sees: rows kv_first_ .. n_kv_ - 1
    std::vector<int64_t> kv_first_;  // [n_batch] first key each token sees (> 0 on sliding-window layers)
};

}  // namespace edgellm::model
