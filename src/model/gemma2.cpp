// Architecture "gemma2": Gemma 2 — Gemma's layers (see gemma.cpp) plus an RMSNorm of the
// attention output (post_attention_norm) and of the FFN output (post_ffw_norm) before each
// residual add, attention scores soft-capped at attn_logit_softcapping (default 50) and the final
// logits at final_logit_softcapping (default 30), and sliding-window attention (window
// attention.sliding_window, default 4096) on the even layers 0, 2, 4 ... (llama.cpp's pattern 2).
#include "model/arch.h"

namespace edgellm::model {
namespace {

void adjust_gemma2(const gguf::file& f, model_hparams& hp) {
    set_gemma_hparams(hp, 46);  // gemma-2-27b: 46 layers
    if (hp.n_swa == 0) hp.n_swa = 4096;
    hp.swa_pattern = 2;
    hp.attn_softcap = optional_positive_f32(f, hp.arch, "attn_logit_softcapping", 50.0f);
    hp.final_softcap = optional_positive_f32(f, hp.arch, "final_logit_softcapping", 30.0f);
}

void load_gemma2_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    load_common_layer(ld, hp, il, lw);
    lw.post_attn_norm = ld.require_vector(layer_tensor_name(il, "post_attention_norm.weight"), hp.n_embd);
    lw.post_ffn_norm = ld.require_vector(layer_tensor_name(il, "post_ffw_norm.weight"), hp.n_embd);
}

}  // namespace

const arch_def& gemma2_arch() {
    static const arch_def def{"gemma2", "Gemma 2", kernels::rope_mode::neox, &load_gemma2_layer, &adjust_gemma2};
    return def;
}

}  // namespace edgellm::model
