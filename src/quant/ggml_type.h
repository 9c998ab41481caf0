// Tensor element types, numbered exactly as ggml/GGUF number them, with their block geometry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace edgellm {

enum class ggml_type : uint32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q8_1 = 9,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    q8_k = 15,
    iq2_xxs = 16,
    iq2_xs = 17,
    iq3_xxs = 18,
    iq1_s = 19,
    iq4_nl = 20,
    iq3_s = 21,
    iq2_s = 22,
    iq4_xs = 23,
    i8 = 24,
    i16 = 25,
    i32 = 26,
    i64 = 27,
    f64 = 28,
    iq1_m = 29,
    bf16 = 30,
    tq1_0 = 34,
    tq2_0 = 35,
    mxfp4 = 39,
};

struct ggml_type_traits {
    ggml_type type;
    std::string_view name;    // upper-case as llama.cpp prints it: "Q4_K", "F16"
    int64_t block_size;       // elements per block (1 for plain types)
    size_t type_size;         // bytes per block
    bool is_quantized;
    bool can_dequantize;      // edgellm has a reference dequantizer for it
};

// Traits of a known type, or nullptr for a number that is not a ggml type.
const ggml_type_traits* type_traits(uint32_t raw_type);
const ggml_type_traits& type_traits(ggml_type t);

inline std::string_view type_name(ggml_type t) { return type_traits(t).name; }
// Parses "q4_k" / "Q4_K" / "f16" ... (case-insensitive); nullopt when unknown.
std::optional<ggml_type> type_from_name(std::string_view name);

// Bytes needed by a row of n elements (n must be a multiple of the block size).
size_t row_size(ggml_type t, int64_t n);

}  // namespace edgellm
