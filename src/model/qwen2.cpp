// Architecture "qwen2": Qwen 1.5/2/2.5 — llama-style layers with biases on the Q, K and V
// projections and NeoX-style RoPE (rotating the two halves of each head).
#include "model/arch.h"

namespace edgellm::model {
namespace {

void load_qwen2_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    load_common_layer(ld, hp, il, lw);
    lw.bq = ld.require_vector(layer_tensor_name(il, "attn_q.bias"), hp.q_dim());
    lw.bk = ld.require_vector(layer_tensor_name(il, "attn_k.bias"), hp.kv_dim());
    lw.bv = ld.require_vector(layer_tensor_name(il, "attn_v.bias"), hp.kv_dim());
}

}  // namespace

const arch_def& qwen2_arch() {
    static const arch_def def{"qwen2", "Qwen 1.5/2/2.5", kernels::rope_mode::neox, &load_qwen2_layer};
    return def;
}

}  // namespace edgellm::model
