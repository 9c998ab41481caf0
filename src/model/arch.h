// Supported architectures: each is one file (llama.cpp, qwen2.cpp, gemma2.cpp ...) defining an
// arch_def; the decoder forward pass itself is shared (forward.cpp).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "model/hparams.h"
#include "model/weights.h"

namespace edgellm::model {

struct arch_def {
    std::string_view name;      // general.architecture value
    std::string_view families;  // for messages and docs
    kernels::rope_mode rope;
    // Loads layer il's tensors (the common set plus the architecture's extras).
    void (*load_layer)(weight_loader& loader, const model_hparams& hp, int il, layer_weights& lw);
    // Optional: sets the architecture's own hyperparameters (embedding scale, activation, soft
    // caps, window pattern ...) after the common ones are read; throws edgellm::error.
    void (*adjust_hparams)(const gguf::file& f, model_hparams& hp) = nullptr;
    // Optional: loads the tensors outside the layers (embeddings, final norm, output); null: the
    // decoder's token_embd, output_norm and output (tied to token_embd when absent).
    void (*load_globals)(weight_loader& loader, const model_hparams& hp, model_weights& w) = nullptr;
};

const arch_def& llama_arch();
const arch_def& qwen2_arch();
const arch_def& qwen3_arch();
const arch_def& phi3_arch();
const arch_def& gemma_arch();
const arch_def& gemma2_arch();
const arch_def& gemma3_arch();
const arch_def& deepseek2_arch();
const arch_def& bert_arch();

// What every Gemma generation shares (gemma.cpp): embeddings times sqrt(n_embd), GeGLU FFN, Q
// pre-scaled by 1/sqrt(head_dim), or by 1/sqrt(n_embd / n_head) for the 27B models, which llama.cpp
// recognises by their layer count (`n_layer_27b`; 0: none).
void set_gemma_hparams(model_hparams& hp, int64_t n_layer_27b);
// An optional float metadata key "{arch}.{key}", checked to be positive when present.
float optional_positive_f32(const gguf::file& f, const std::string& arch, const char* key, float fallback);

// Every supported architecture, in the order they are listed to users.
const std::vector<const arch_def*>& supported_archs();
// The architecture named `name`, or an edgellm::error listing the supported ones.
const arch_def& find_arch(std::string_view name);

}  // namespace edgellm::model
