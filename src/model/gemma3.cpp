// Architecture "gemma3": Gemma 3 (text) — Gemma 2's layers without the soft caps, plus a per-head
// RMSNorm of Q and K before RoPE (as qwen3), and five sliding-window layers to every global one
// (layers 5, 11, 17 ... are global: llama.cpp's pattern 6). Windowed layers use RoPE base 10000
// without scaling; global layers use rope.freq_base and the metadata's rope scaling (linear 8
// for the 4B/12B/27B models). Vision tensors (mmproj) live in a separate file and are not used.
#include "model/arch.h"

namespace edgellm::model {
namespace {

void adjust_gemma3(const gguf::file&, model_hparams& hp) {
    set_gemma_hparams(hp, 62);  // gemma-3-27b: 62 layers
    // Without attention.sliding_window every layer is global, as in llama.cpp.
    if (hp.n_swa > 0) {
        hp.swa_pattern = 6;
        hp.rope_freq_base_swa = 10000.0f;
        hp.rope_freq_scale_swa = 1.0f;
    }
}

void load_gemma3_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    load_common_layer(ld, hp, il, lw);
    lw.q_norm = ld.require_vector(layer_tensor_name(il, "attn_q_norm.weight"), hp.head_dim);
    lw.k_norm = ld.require_vector(layer_tensor_name(il, "attn_k_norm.weight"), hp.head_dim);
    lw.post_attn_norm = ld.require_vector(layer_tensor_name(il, "post_attention_norm.weight"), hp.n_embd);
    lw.post_ffn_norm = ld.require_vector(layer_tensor_name(il, "post_ffw_norm.weight"), hp.n_embd);
}

}  // namespace

const arch_def& gemma3_arch() {
    static const arch_def def{"gemma3", "Gemma 3 (text)", kernels::rope_mode::neox, &load_gemma3_layer,
                              &adjust_gemma3};
    return def;
}

}  // namespace edgellm::model
