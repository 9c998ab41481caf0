// Supported architectures: each is one file (llama.cpp, qwen2.cpp, qwen3.cpp) defining an
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
};

const arch_def& llama_arch();
const arch_def& qwen2_arch();
const arch_def& qwen3_arch();
const arch_def& phi3_arch();

// Every supported architecture, in the order they are listed to users.
const std::vector<const arch_def*>& supported_archs();
// The architecture named `name`, or an edgellm::error listing the supported ones.
const arch_def& find_arch(std::string_view name);

}  // namespace edgellm::model
