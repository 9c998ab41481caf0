// Architecture "llama": Llama 2/3/3.1/3.2, Mistral, TinyLlama, DeepSeek-LLM (RMSNorm, RoPE in
// the original interleaved-pair layout, GQA, SwiGLU; no biases).
#include "model/arch.h"

namespace edgellm::model {

const arch_def& llama_arch() {
    static const arch_def def{"llama", "Llama 2/3/3.1/3.2, Mistral, TinyLlama, DeepSeek-LLM",
                              kernels::rope_mode::normal, &load_common_layer};
    return def;
}

}  // namespace edgellm::model
