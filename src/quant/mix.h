// llama.cpp's quantization "file types" (mixes) and its per-tensor type rules
// (llama-quant.cpp, llama_tensor_get_type): which ggml type each weight of a dense model gets for
// a mix such as Q4_K_M. One owner for `edgellm quantize` and `edgellm synth`.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quant/ggml_type.h"

namespace edgellm {

// A mix as `quantize` / `synth --type` spell it, each one of llama.cpp's file types: f32, f16,
// bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s,
// q5_k_m, q6_k; q3_k / q4_k / q5_k are aliases of the _s variants.
struct type_mix {
    std::string name;    // lower case
    ggml_type base;      // the type most weights get
    uint32_t file_type;  // llama_ftype written to general.file_type
};
const std::vector<type_mix>& type_mixes();
// Case-insensitive; throws usage_error listing the names.
const type_mix& find_type_mix(std::string_view name);
// The mix whose general.file_type is `file_type`, or null.
const type_mix* type_mix_for_file_type(uint32_t file_type);

// The model facts the rules look at.
struct mix_model {
    int n_layer = 0;
    int64_t n_gqa = 1;       // n_head / n_head_kv
    bool is_70b = false;     // llama.cpp's LLM_TYPE_70B (80 layers with GQA): attn_v gets Q5_K
};

// The type llama.cpp's quantizer gives this weight matrix for `mix`. `il` is the layer index
// (llama.cpp counts attn_v and ffn_down tensors in file order, the same for a dense model).
// With tied embeddings llama.cpp gives token_embd the output.weight rule: pass "output.weight"
// as the name then. `pure` gives every matrix the base type (llama-quantize --pure). The last
// step is llama.cpp's fallback when a row is not a whole number of blocks (Q2_K/Q3_K -> Q4_0,
// Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16). Only for tensors llama.cpp quantizes at
// all (see quantizable_tensor); norms are F32.
ggml_type tensor_type(const type_mix& mix, std::string_view tensor_name, int il, const mix_model& m, int64_t ne0,
                      bool pure);
// Shorthand used by synth (never a 70B shape).
inline ggml_type tensor_type(const type_mix& mix, std::string_view tensor_name, int il, int n_layer, int64_t ne0,
                             int64_t n_gqa, bool pure) {
    return tensor_type(mix, tensor_name, il, mix_model{n_layer, n_gqa, false}, ne0, pure);
}

// llama.cpp's tensor_allows_quantization for the names a llama-family file has: matrices
// (2+ dims) whose name ends in "weight", except norms, MoE router and routing tables,
// position / token-type embeddings, conv1d and relative-position tensors.
bool quantizable_tensor(std::string_view name, int n_dims);

}  // namespace edgellm
