// Architecture "phi3": Phi-3 / Phi-3.5 mini — llama-style layers with the Q, K and V
// projections fused into one attn_qkv matrix and the FFN gate and up projections fused into one
// ffn_up of 2 x n_ff rows (gate first), NeoX-style RoPE. The fused matrices are used as row
// views (no copy). LongRoPE variants (rope_factors_long/short, the 128k models) are refused.
#include <fmt/format.h>

#include "core/error.h"
#include "model/arch.h"
#include "quant/ggml_type.h"

namespace edgellm::model {
namespace {

void load_phi3_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    auto n = [il](const char* suffix) { return layer_tensor_name(il, suffix); };
    if (il == 0 && ld.optional_vector("rope_factors_long.weight", hp.n_rot / 2))
        throw error("Phi-3 long-context models (LongRoPE: rope_factors_long/short) are not supported yet");
    lw.attn_norm = ld.require_vector(n("attn_norm.weight"), hp.n_embd);
    if (auto qkv = ld.optional_matrix(n("attn_qkv.weight"), hp.n_embd, hp.q_dim() + 2 * hp.kv_dim())) {
        lw.wq = row_slice(*qkv, 0, hp.q_dim());
        lw.wk = row_slice(*qkv, hp.q_dim(), hp.kv_dim());
        lw.wv = row_slice(*qkv, hp.q_dim() + hp.kv_dim(), hp.kv_dim());
    } else {
        lw.wq = ld.require_matrix(n("attn_q.weight"), hp.n_embd, hp.q_dim());
        lw.wk = ld.require_matrix(n("attn_k.weight"), hp.n_embd, hp.kv_dim());
        lw.wv = ld.require_matrix(n("attn_v.weight"), hp.n_embd, hp.kv_dim());
    }
    lw.wo = ld.require_matrix(n("attn_output.weight"), hp.q_dim(), hp.n_embd);
    lw.ffn_norm = ld.require_vector(n("ffn_norm.weight"), hp.n_embd);
    const matrix up = ld.require_matrix(n("ffn_up.weight"), hp.n_embd, 2 * hp.n_ff);
    lw.ffn_gate = row_slice(up, 0, hp.n_ff);
    lw.ffn_up = row_slice(up, hp.n_ff, hp.n_ff);
    lw.ffn_down = ld.require_matrix(n("ffn_down.weight"), hp.n_ff, hp.n_embd);
}

}  // namespace

const arch_def& phi3_arch() {
    static const arch_def def{"phi3", "Phi-3 / Phi-3.5 mini (4k context)", kernels::rope_mode::neox, &load_phi3_layer};
    return def;
}

}  // namespace edgellm::model
