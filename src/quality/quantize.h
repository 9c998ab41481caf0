// `edgellm quantize`: rewrites a GGUF model with its weights in another type mix (Q4_K_M, Q8_0,
// ...), with llama.cpp's per-tensor rules (quant/mix.h) and edgellm's quantizers, which are
// bit-exact with ggml's (so the output matches llama-quantize's without an importance matrix).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "quant/ggml_type.h"

namespace edgellm::quality {

struct quantize_options {
    std::string type;               // a mix name: q4_k_m, q8_0, f16, ... (quant/mix.h)
    int n_threads = 0;              // 0: every core
    bool allow_requantize = false;  // accept already-quantized input tensors (as llama-quantize)
    bool pure = false;              // every matrix in the base type (llama-quantize --pure)
    // Called before each tensor is written and once at the end (done == total).
    std::function<void(size_t done, size_t total, const std::string& tensor, uint64_t bytes_in_done,
                       uint64_t bytes_in_total)>
        progress;
};

struct quantized_tensor {
    std::string name;
    ggml_type from = ggml_type::f32;
    ggml_type to = ggml_type::f32;
    int64_t ne0 = 0, n_rows = 0;
    uint64_t bytes_in = 0, bytes_out = 0;
};

struct quantize_result {
    std::string input, output, type;
    uint32_t file_type = 0;
    uint64_t n_params = 0;
    uint64_t bytes_in = 0, bytes_out = 0;  // file sizes
    double seconds = 0;
    int n_threads = 0;
    std::vector<quantized_tensor> tensors;
    std::map<std::string, int> tensor_types;  // output type name -> tensors
};

// The output type of every tensor of `input` for `type`, without writing anything (what
// quantize_model would do); throws like quantize_model for bad input.
std::vector<quantized_tensor> plan_quantization(const std::string& input, const quantize_options& opts);

// Writes `output` (through a temporary file renamed at the end: a failure leaves no partial
// file). Throws usage_error for an unknown type, an input that is already quantized (unless
// allow_requantize), input == output, an unsupported model; edgellm::error for I/O failures
// and non-finite weights (naming the tensor and row).
quantize_result quantize_model(const std::string& input, const std::string& output, const quantize_options& opts);

}  // namespace edgellm::quality
