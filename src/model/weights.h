// Model weights: views into the memory-mapped GGUF (zero copy) plus the loader that finds,
// shape-checks and type-checks every tensor an architecture asks for.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/hparams.h"

namespace edgellm::model {

// A 2-D weight used in place: n_rows rows of n_cols elements of `type` (ggml ne = {n_cols, n_rows}).
// After model::repack() it may point at the CPU kernels' packed copy instead (packed == true).
struct matrix {
    ggml_type type = ggml_type::f32;
    const void* data = nullptr;  // into the file mapping, or the packed copy
    int64_t n_rows = 0;
    int64_t n_cols = 0;
    bool packed = false;
    explicit operator bool() const { return data != nullptr; }
};

// y[n_tokens][n_rows] = x[n_tokens][n_cols] times the matrix (packed or not).
void mul_mat(const matrix& w, const float* x, int64_t n_tokens, float* y, int n_threads);

struct layer_weights {
    const float* attn_norm = nullptr;  // [n_embd]
    matrix wq;                         // [q_dim][n_embd]
    matrix wk;                         // [kv_dim][n_embd]
    matrix wv;                         // [kv_dim][n_embd]
    matrix wo;                         // [n_embd][q_dim]
    const float* bq = nullptr;         // [q_dim], optional (qwen2)
    const float* bk = nullptr;         // [kv_dim], optional (qwen2)
    const float* bv = nullptr;         // [kv_dim], optional (qwen2)
    const float* q_norm = nullptr;     // [head_dim], optional per-head RMSNorm of Q (qwen3)
    const float* k_norm = nullptr;     // [head_dim], optional per-head RMSNorm of K (qwen3)
    const float* post_attn_norm = nullptr;  // [n_embd], optional RMSNorm of the attention output (gemma2/3)
    const float* ffn_norm = nullptr;   // [n_embd]
    matrix ffn_gate;                   // [n_ff][n_embd]
    matrix ffn_up;                     // [n_ff][n_embd]
    matrix ffn_down;                   // [n_embd][n_ff]
    const float* post_ffn_norm = nullptr;   // [n_embd], optional RMSNorm of the FFN output (gemma2/3)
};

struct model_weights {
    matrix token_embd;                  // [n_vocab][n_embd]
    const float* output_norm = nullptr; // [n_embd]
    matrix output;                      // [n_vocab][n_embd]; == token_embd when embeddings are tied
    const float* rope_freqs = nullptr;  // [n_rot / 2], optional Llama 3.1 per-dimension divisors
    std::vector<layer_weights> layers;  // [n_layer]
    uint64_t n_matrix_bytes = 0;        // bytes of all matrices (what one token's forward pass reads)
};

// Looks tensors up by name and checks shape and type. 1-D tensors (norms, biases) are converted
// to f32 into storage the loader's owner keeps; matrices stay in the mapping.
class weight_loader {
public:
    weight_loader(const gguf::file& f, std::vector<std::vector<float>>& owned, uint64_t& n_matrix_bytes)
        : file_(f), owned_(owned), n_matrix_bytes_(n_matrix_bytes) {}

    // ggml order: n_cols (ne[0], contiguous) then n_rows (ne[1]).
    matrix require_matrix(const std::string& name, int64_t n_cols, int64_t n_rows);
    std::optional<matrix> optional_matrix(const std::string& name, int64_t n_cols, int64_t n_rows);
    const float* require_vector(const std::string& name, int64_t n);
    const float* optional_vector(const std::string& name, int64_t n);  // nullptr when absent

private:
    const gguf::tensor_info& require(const std::string& name);
    void check_shape(const gguf::tensor_info& t, int64_t ne0, int64_t ne1, int n_dims);
    matrix to_matrix(const gguf::tensor_info& t, int64_t n_cols, int64_t n_rows);
    const float* to_vector(const gguf::tensor_info& t, int64_t n);

    const gguf::file& file_;
    std::vector<std::vector<float>>& owned_;
    uint64_t& n_matrix_bytes_;
};

// "blk.3.attn_q.weight"
std::string layer_tensor_name(int il, const char* suffix);

// The tensors every llama-style decoder layer has (norms, Q/K/V/O, SwiGLU FFN).
void load_common_layer(weight_loader& loader, const model_hparams& hp, int il, layer_weights& lw);

}  // namespace edgellm::model
