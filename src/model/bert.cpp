// Architecture "bert": BERT-class encoders (BERT, MiniLM / sentence-transformers, BGE) as llama.cpp
// converts them: token + absolute position + token-type embeddings and a LayerNorm, then layers of
// bidirectional attention (Q/K/V/O with biases, no RoPE) and a GELU FFN with biases, each sub-layer
// followed by residual add and LayerNorm (post-norm, Vaswani et al. 2017; Devlin et al. 2018).
// The output is the hidden states (pooled by the embedding path), not next-token logits.
#include <fmt/format.h>

#include "model/arch.h"

namespace edgellm::model {
namespace {

void adjust_bert(const gguf::file& f, model_hparams& hp) {
    hp.causal = f.get_bool_opt("bert.attention.causal").value_or(false);
    hp.use_rope = false;
    hp.post_layer_norm = true;
    hp.ffn_gated = false;
    hp.ffn_act = ffn_activation::gelu;
    const double eps = f.get_f64_opt("bert.attention.layer_norm_epsilon").value_or(1e-12);
    if (!(eps > 0.0 && eps < 1.0))
        throw error(fmt::format(
            "model metadata: bert.attention.layer_norm_epsilon {} is out of range", eps));
    hp.norm_eps = static_cast<float>(eps);
}

void load_bert_globals(weight_loader& ld, const model_hparams& hp, model_weights& w) {
    w.token_embd = ld.require_matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
    w.pos_embd = ld.require_matrix("position_embd.weight", hp.n_embd, hp.n_ctx_train);
    if (ld.has("token_types.weight")) {
        const gguf::tensor_info& t = *ld.file().find_tensor("token_types.weight");
        w.token_types =
            ld.require_matrix("token_types.weight", hp.n_embd, t.n_dims >= 2 ? t.ne[1] : 1);
    }
    w.token_embd_norm = ld.require_vector("token_embd_norm.weight", hp.n_embd);
    w.token_embd_norm_b = ld.require_vector("token_embd_norm.bias", hp.n_embd);
    if (ld.has("cls.output.weight")) {
        const gguf::tensor_info& t = *ld.file().find_tensor("cls.output.weight");
        const int64_t n_labels = t.n_dims >= 2 ? t.ne[1] : 1;
        w.cls_out = ld.require_matrix("cls.output.weight", hp.n_embd, n_labels);
        w.cls_out_b = ld.optional_vector("cls.output.bias", n_labels);
        if (auto c = ld.optional_matrix("cls.weight", hp.n_embd, hp.n_embd)) {
            w.cls = *c;
            w.cls_b = ld.optional_vector("cls.bias", hp.n_embd);
        }
    }
}

void load_bert_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    auto n = [il](const char* suffix) { return layer_tensor_name(il, suffix); };
    lw.wq = ld.require_matrix(n("attn_q.weight"), hp.n_embd, hp.q_dim());
    lw.wk = ld.require_matrix(n("attn_k.weight"), hp.n_embd, hp.kv_dim());
    lw.wv = ld.require_matrix(n("attn_v.weight"), hp.n_embd, hp.kv_dim());
    lw.bq = ld.require_vector(n("attn_q.bias"), hp.q_dim());
    lw.bk = ld.require_vector(n("attn_k.bias"), hp.kv_dim());
    lw.bv = ld.require_vector(n("attn_v.bias"), hp.kv_dim());
    lw.wo = ld.require_matrix(n("attn_output.weight"), hp.q_dim(), hp.n_embd);
    lw.bo = ld.require_vector(n("attn_output.bias"), hp.n_embd);
    lw.attn_out_norm = ld.require_vector(n("attn_output_norm.weight"), hp.n_embd);
    lw.attn_out_norm_b = ld.require_vector(n("attn_output_norm.bias"), hp.n_embd);
    lw.ffn_up = ld.require_matrix(n("ffn_up.weight"), hp.n_embd, hp.n_ff);
    lw.ffn_up_b = ld.require_vector(n("ffn_up.bias"), hp.n_ff);
    lw.ffn_down = ld.require_matrix(n("ffn_down.weight"), hp.n_ff, hp.n_embd);
    lw.ffn_down_b = ld.require_vector(n("ffn_down.bias"), hp.n_embd);
    lw.layer_out_norm = ld.require_vector(n("layer_output_norm.weight"), hp.n_embd);
    lw.layer_out_norm_b = ld.require_vector(n("layer_output_norm.bias"), hp.n_embd);
}

}  // namespace

const arch_def& bert_arch() {
    static const arch_def def{
        "bert",
        "BERT, MiniLM / sentence-transformers, BGE (encoders: embeddings only)",
        kernels::rope_mode::normal,
        &load_bert_layer,
        &adjust_bert,
        &load_bert_globals};
    return def;
}

}  // namespace edgellm::model
