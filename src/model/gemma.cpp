// Architecture "gemma": Gemma (2B, 7B) — llama-style layers (RMSNorm, GQA/MQA, no biases) with
// the token embeddings scaled by sqrt(n_embd), a GeGLU FFN (tanh GELU of the gate times up), Q
// pre-scaled by 1/sqrt(head_dim), NeoX-style RoPE and tied output embeddings. The GGUF converter
// already stores Gemma's norm weights as (1 + w), so the usual RMSNorm applies unchanged.
#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "model/arch.h"

namespace edgellm::model {

void set_gemma_hparams(model_hparams& hp, int64_t n_layer_27b) {
    hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
    hp.ffn_act = ffn_activation::gelu;
    hp.prescale_q = true;
    const bool is_27b = n_layer_27b > 0 && hp.n_layer == n_layer_27b;
    hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(is_27b ? hp.n_embd / hp.n_head : hp.head_dim));
}

float optional_positive_f32(const gguf::file& f, const std::string& arch, const char* key, float fallback) {
    const std::string full = arch + "." + key;
    const auto v = f.get_f64_opt(full);
    if (!v) return fallback;
    if (!(*v > 0.0 && *v < 1e30)) throw error(fmt::format("model metadata '{}' = {} must be positive", full, *v));
    return static_cast<float>(*v);
}

namespace {

void adjust_gemma(const gguf::file&, model_hparams& hp) {
    set_gemma_hparams(hp, 0);
    hp.n_swa = 0;  // Gemma 1 has full attention in every layer
}

}  // namespace

const arch_def& gemma_arch() {
    static const arch_def def{"gemma", "Gemma", kernels::rope_mode::neox, &load_common_layer, &adjust_gemma};
    return def;
}

}  // namespace edgellm::model
