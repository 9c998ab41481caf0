// `edgellm convert`: a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) to
// GGUF with the tensor names, metadata keys and tokenizer fields llama.cpp's convert_hf_to_gguf.py
// writes, so llama.cpp and edgellm read the result alike. Architectures: BERT and DistilBERT
// encoders and their sequence classifiers, Llama / Mistral, Qwen2 / Qwen3, Gemma / Gemma 2 /
// Gemma 3 (text), Phi-3. The file is written to OUT.tmp and renamed: never half-written.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/ggml_type.h"

namespace edgellm::convert {

struct convert_options {
    ggml_type outtype = ggml_type::f16;  // f32, f16, bf16 or q8_0 for the matrices
};

struct convert_report {
    std::string arch;             // GGUF general.architecture written
    std::string hf_architecture;  // config.json's architectures[0] (or model_type)
    int64_t n_tensors = 0;
    uint64_t n_bytes = 0;  // size of the written file
    std::vector<std::string>
        skipped;  // HF tensors not needed by the GGUF model (pooler, MLM head ...)
};

// "f32" / "f16" / "bf16" / "q8_0"; throws usage_error for anything else.
ggml_type parse_outtype(const std::string& s);

// Converts; throws edgellm::error (usage_error for unknown architectures) naming what is missing or
// unsupported. Nothing is left at out_path on failure.
convert_report convert_hf(const std::string& hf_dir, const std::string& out_path,
                          const convert_options& o);

}  // namespace edgellm::convert
