// `edgellm synth`: writes llama- (or gemma2/gemma3/deepseek2-) architecture GGUF files with deterministic random
// weights in any supported weight type (with llama.cpp's per-tensor type mixes), for tests and benchmarks.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "quant/ggml_type.h"
#include "quant/mix.h"

namespace edgellm::synth {

// DeepSeek-V2 layout of a deepseek2 shape: Multi-head Latent Attention in the split attn_k_b /
// attn_v_b form convert_hf_to_gguf.py writes, Mixture-of-Experts FFNs after the dense layers, and
// YaRN RoPE scaling as DeepSeek-V2-Lite declares it.
struct deepseek2_shape {
    int64_t q_lora_rank = 0;  // 0: one attn_q (V2-Lite)
    int64_t kv_lora_rank = 0;
    int64_t qk_nope = 0;
    int64_t qk_rope = 0;
    int64_t v_head = 0;
    int64_t n_dense_lead = 0;
    int64_t n_expert = 0;
    int64_t n_expert_used = 0;
    int64_t n_expert_shared = 0;
    int64_t n_ff_exp = 0;
    float yarn_factor = 0.0f;     // 0: no rope scaling
    int64_t yarn_orig_ctx = 0;
    float yarn_mscale_all_dim = 0.0f;
};

// Hyperparameters of a named shape (llama-family, Gemma 2 / 3 or DeepSeek-V2 layouts).
struct shape {
    std::string name;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t n_ff = 0;
    int64_t n_vocab = 0;  // 0: the size of the built-in vocab (without --vocab-from)
    int64_t n_ctx = 0;    // llama.context_length
    float rope_freq_base = 10000.0f;
    float rms_eps = 1e-5f;
    bool tied_embeddings = false;  // no output.weight: the output projection reuses token_embd
    std::string arch = "llama";    // general.architecture: llama, gemma2, gemma3 or deepseek2
    int64_t n_swa = 0;             // {arch}.attention.sliding_window (gemma2 / gemma3); 0: none
    deepseek2_shape ds{};          // arch deepseek2 only
};

// tiny (tests), small (SmolLM-135M-like), tinyllama-1.1b, llama-7b, gemma2-tiny, gemma3-tiny, deepseek2-tiny.
const std::vector<shape>& shapes();
// The named shape; throws usage_error listing the known names.
const shape& find_shape(std::string_view name);

// The weight-type mixes and llama.cpp's per-tensor rules live in quant/mix.h.
using ::edgellm::find_type_mix;
using ::edgellm::tensor_type;
using ::edgellm::type_mix;
using ::edgellm::type_mixes;

struct options {
    std::string shape = "tiny";
    std::string type = "f16";
    uint64_t seed = 42;
    std::string vocab_from;  // GGUF whose tokenizer.* keys are copied; empty: built-in byte vocab
    bool pure = false;
    int64_t n_layer = 0;     // overrides the shape's layer count when > 0
    std::string name;        // general.name; empty: "edgellm-synth-<shape>-<type>"
    // Called after each tensor is written (done = tensors finished so far).
    std::function<void(size_t done, size_t total, const std::string& tensor, uint64_t bytes_done)> progress;
};

struct summary {
    std::string path;
    std::string shape;
    std::string type;
    uint64_t n_params = 0;
    uint64_t n_vocab = 0;
    uint64_t file_bytes = 0;
    std::map<std::string, int> tensor_types;  // "Q4_K" -> number of tensors
};

// Writes the model to `path` (streamed tensor by tensor, never the whole model in memory).
// Throws usage_error for bad options and edgellm::error for I/O failures.
summary write_model(const std::string& path, const options& opts);

// The built-in vocab: tokenizer.ggml.model "llama" (SentencePiece) with <unk>, <s>, </s>, the 256
// byte-fallback tokens <0x00>..<0xFF>, printable ASCII, "▁" and common English pieces, padded with
// generated pieces up to n_vocab when n_vocab is larger (0: no padding).
struct vocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> token_types;  // llama.cpp: 1 normal, 2 unknown, 3 control, 6 byte
};
vocab builtin_vocab(int64_t n_vocab);

}  // namespace edgellm::synth
