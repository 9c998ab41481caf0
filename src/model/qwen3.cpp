// Architecture "qwen3": Qwen 3 — llama-style layers without biases, plus an RMSNorm over each
// head of Q and K (before RoPE), and NeoX-style RoPE.
#include "model/arch.h"

namespace edgellm::model {
namespace {

void load_qwen3_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    load_common_layer(ld, hp, il, lw);
    lw.q_norm = ld.require_vector(layer_tensor_name(il, "attn_q_norm.weight"), hp.head_dim);
    lw.k_norm = ld.require_vector(layer_tensor_name(il, "attn_k_norm.weight"), hp.head_dim);
}

}  // namespace

const arch_def& qwen3_arch() {
    static const arch_def def{"qwen3", "Qwen 3", kernels::rope_mode::neox, &load_qwen3_layer};
    return def;
}

}  // namespace edgellm::model
