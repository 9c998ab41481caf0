// A model-level summary of a GGUF file (architecture, size, type mix, hyperparameters,
// tokenizer) and value formatting shared by `edgellm inspect` and the server's model info.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.h"

namespace edgellm::gguf {

struct model_summary {
    std::string architecture;             // general.architecture ("" when absent)
    std::string name;                     // general.name
    std::string file_type;                // general.file_type as llama.cpp names it ("Q4_K_M")
    uint64_t n_params = 0;                // sum of tensor element counts
    uint64_t n_tensors = 0;
    uint64_t file_size_bytes = 0;
    uint64_t tensor_data_bytes = 0;
    std::vector<std::pair<std::string, uint64_t>> type_mix;  // ("Q4_K", 150), most frequent first
    // From <arch>.* keys; per-layer arrays report their largest entry.
    std::optional<uint64_t> context_length, n_layers, n_heads, n_kv_heads, n_embd, n_ff, n_vocab;
    std::string tokenizer_model;          // tokenizer.ggml.model ("llama", "gpt2", ...)
    bool has_chat_template = false;
};

model_summary summarize(const file& f);

// "Q4_K: 150 tensors, Q6_K: 25, F32: 45"
std::string format_type_mix(const model_summary& s);
// llama.cpp's name for a general.file_type number ("MOSTLY_Q4_K_M" is printed as "Q4_K_M").
std::string file_type_name(uint64_t file_type);
// The quantization a file is known by ("Q4_K_M", "Q8_0"): general.file_type by llama.cpp's
// names when the file has a known one, else the type holding most bytes of the matrix
// (2-D and up) weights. The one owner of that rule (/api/tags, /api/show).
std::string quantization_level(const file& f);

// One-line rendering of a value for humans: strings quoted and cut after max_string_chars,
// arrays longer than max_items abbreviated as "[32000 strings: '<unk>', '<s>', '</s>', ...]".
std::string format_value(const value& v, size_t max_items = 3, size_t max_string_chars = 60);
// "u32", "string", "array[string]", "array[array]".
std::string value_type_label(const value& v);
// JSON rendering: numbers, bools and strings as themselves (non-finite floats as the strings
// "nan", "inf", "-inf"); arrays longer than max_items (0 = no limit) become
// {"n_items": N, "elem_type": "...", "head": [first items]}.
nlohmann::json value_to_json(const value& v, size_t max_items = 0);

}  // namespace edgellm::gguf
