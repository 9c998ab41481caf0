// llama.cpp's mixes and per-tensor rules (llama-quant.cpp, llama_tensor_get_type_impl) for dense
// llama-family models.
#include "quant/mix.h"

#include <algorithm>

#include "core/error.h"

namespace edgellm {

const std::vector<type_mix>& type_mixes() {
    // file_type values are llama.cpp's llama_ftype numbers.
    using t = ggml_type;
    static const std::vector<type_mix> k_mixes = {
        {"f32", t::f32, 0},     {"f16", t::f16, 1},       {"bf16", t::bf16, 32},    {"q8_0", t::q8_0, 7},
        {"q4_0", t::q4_0, 2},   {"q4_1", t::q4_1, 3},     {"q5_0", t::q5_0, 8},     {"q5_1", t::q5_1, 9},
        {"q2_k", t::q2_k, 10},  {"q3_k", t::q3_k, 11},    {"q3_k_s", t::q3_k, 11},  {"q3_k_m", t::q3_k, 12},
        {"q3_k_l", t::q3_k, 13}, {"q4_k", t::q4_k, 14},   {"q4_k_s", t::q4_k, 14},  {"q4_k_m", t::q4_k, 15},
        {"q5_k", t::q5_k, 16},  {"q5_k_s", t::q5_k, 16},  {"q5_k_m", t::q5_k, 17},  {"q6_k", t::q6_k, 18},
    };
    return k_mixes;
}

const type_mix& find_type_mix(std::string_view name) {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string known;
    for (const auto& m : type_mixes()) {
        if (m.name == lower) return m;
        known += (known.empty() ? "" : ", ") + m.name;
    }
    throw usage_error("unknown weight type '" + std::string(name) + "' (known: " + known + ")");
}

const type_mix* type_mix_for_file_type(uint32_t file_type) {
    for (const auto& m : type_mixes())
        if (m.file_type == file_type) return &m;
    return nullptr;
}

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool use_more_bits(int il, int n_layer) {
    return il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2;
}

// llama.cpp's tensor_type_fallback: the replacement when a row is not a whole number of blocks.
ggml_type row_fallback(ggml_type t) {
    switch (t) {
        case ggml_type::q2_k: case ggml_type::q3_k: return ggml_type::q4_0;
        case ggml_type::q4_k: return ggml_type::q5_0;
        case ggml_type::q5_k: return ggml_type::q5_1;
        case ggml_type::q6_k: return ggml_type::q8_0;
        default: return ggml_type::f16;
    }
}

}  // namespace

ggml_type tensor_type(const type_mix& mix, std::string_view name, int il, const mix_model& mm, int64_t ne0,
                      bool pure) {
    using t = ggml_type;
    if (ends_with(name, "_norm.weight")) return t::f32;
    const t base = mix.base;
    if (!type_traits(base).is_quantized) return base;
    t type = base;
    const int n_layer = mm.n_layer;
    // Plain q3_k / q4_k / q5_k are written with the _S file types, so they follow those rules.
    const std::string m = mix.name == "q3_k" || mix.name == "q4_k" || mix.name == "q5_k" ? mix.name + "_s" : mix.name;
    if (!pure) {
        if (name == "output.weight") {
            // Q8_0 when the row is not whole 256-blocks of the base type (nx % qk_k, as llama.cpp).
            type = base == t::q8_0 || ne0 % type_traits(base).block_size != 0 ? t::q8_0 : t::q6_k;
        } else if (ends_with(name, "attn_v.weight") || ends_with(name, "attn_qkv.weight") ||
                   ends_with(name, "attn_kv_b.weight")) {
            // category_is_attn_v: attn_qkv and attn_kv_b take the attn_v branch in llama.cpp.
            if (m == "q2_k") type = mm.n_gqa >= 4 ? t::q4_k : t::q3_k;
            else if (m == "q3_k_m") type = il < 2 ? t::q5_k : t::q4_k;
            else if (m == "q3_k_l") type = t::q5_k;
            else if ((m == "q4_k_m" || m == "q5_k_m") && use_more_bits(il, n_layer)) type = t::q6_k;
            else if (m == "q4_k_s" && il < 4) type = t::q5_k;
            if (mm.is_70b && (type == t::q3_k || type == t::q4_k)) type = t::q5_k;
        } else if (ends_with(name, "ffn_down.weight")) {
            if (m == "q2_k") type = t::q3_k;
            else if (m == "q3_k_m") type = il < n_layer / 16 ? t::q5_k : t::q4_k;
            else if (m == "q3_k_l") type = t::q5_k;
            else if ((m == "q4_k_m" || m == "q5_k_m") && use_more_bits(il, n_layer)) type = t::q6_k;
            else if (m == "q4_k_s" && il < n_layer / 8) type = t::q5_k;
        } else if (ends_with(name, "attn_output.weight")) {
            if (m == "q2_k") type = t::q3_k;
            else if (m == "q3_k_m") type = t::q4_k;
            else if (m == "q3_k_l") type = t::q5_k;
        }
    }
    while (ne0 % type_traits(type).block_size != 0) {
        const t next = row_fallback(type);
        // A 32-block type that does not fit goes straight to F16 (llama.cpp).
        type = next;
        if (type == t::f16) break;
    }
    return type;
}

bool quantizable_tensor(std::string_view name, int n_dims) {
    if (n_dims < 2 || !ends_with(name, "weight")) return false;
    for (std::string_view no : {"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                                "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "attn_rel_b.weight",
                                ".position_embd", ".rel_pos", ".patch_embd"})
        if (contains(name, no)) return false;
    return name != "position_embd.weight" && name != "token_types.weight";
}

}  // namespace edgellm
