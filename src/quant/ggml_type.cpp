// Block geometry of every ggml type (sizes from the ggml block definitions).
#include "quant/ggml_type.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "core/error.h"

namespace edgellm {
namespace {
using t = ggml_type;
constexpr std::array<ggml_type_traits, 33> k_traits = {{
    {t::f32, "F32", 1, 4, false, true},
    {t::f16, "F16", 1, 2, false, true},
    {t::q4_0, "Q4_0", 32, 18, true, true},
    {t::q4_1, "Q4_1", 32, 20, true, true},
    {t::q5_0, "Q5_0", 32, 22, true, true},
    {t::q5_1, "Q5_1", 32, 24, true, true},
    {t::q8_0, "Q8_0", 32, 34, true, true},
    {t::q8_1, "Q8_1", 32, 36, true, true},
    {t::q2_k, "Q2_K", 256, 84, true, true},
    {t::q3_k, "Q3_K", 256, 110, true, true},
    {t::q4_k, "Q4_K", 256, 144, true, true},
    {t::q5_k, "Q5_K", 256, 176, true, true},
    {t::q6_k, "Q6_K", 256, 210, true, true},
    {t::q8_k, "Q8_K", 256, 292, true, true},
    {t::iq2_xxs, "IQ2_XXS", 256, 66, true, false},
    {t::iq2_xs, "IQ2_XS", 256, 74, true, false},
    {t::iq3_xxs, "IQ3_XXS", 256, 98, true, false},
    {t::iq1_s, "IQ1_S", 256, 50, true, false},
    {t::iq4_nl, "IQ4_NL", 32, 18, true, false},
    {t::iq3_s, "IQ3_S", 256, 110, true, false},
    {t::iq2_s, "IQ2_S", 256, 82, true, false},
    {t::iq4_xs, "IQ4_XS", 256, 136, true, false},
    {t::i8, "I8", 1, 1, false, false},
    {t::i16, "I16", 1, 2, false, false},
    {t::i32, "I32", 1, 4, false, false},
    {t::i64, "I64", 1, 8, false, false},
    {t::f64, "F64", 1, 8, false, false},
    {t::iq1_m, "IQ1_M", 256, 56, true, false},
    {t::bf16, "BF16", 1, 2, false, true},
    {t::tq1_0, "TQ1_0", 256, 54, true, false},
    {t::tq2_0, "TQ2_0", 256, 66, true, false},
    {t::mxfp4, "MXFP4", 32, 17, true, false},
    {t::f32, "", 0, 0, false, false},  // sentinel, never matched
}};
}  // namespace

const ggml_type_traits* type_traits(uint32_t raw_type) {
    for (const auto& tr : k_traits)
        if (tr.block_size != 0 && static_cast<uint32_t>(tr.type) == raw_type) return &tr;
    return nullptr;
}

const ggml_type_traits& type_traits(ggml_type type) {
    const auto* tr = type_traits(static_cast<uint32_t>(type));
    if (!tr) throw error("unknown ggml type " + std::to_string(static_cast<uint32_t>(type)));
    return *tr;
}

std::optional<ggml_type> type_from_name(std::string_view name) {
    std::string up(name);
    std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
    for (const auto& tr : k_traits)
        if (tr.block_size != 0 && tr.name == up) return tr.type;
    return std::nullopt;
}

size_t row_size(ggml_type type, int64_t n) {
    const auto& tr = type_traits(type);
    return static_cast<size_t>(n / tr.block_size) * tr.type_size;
}

}  // namespace edgellm
