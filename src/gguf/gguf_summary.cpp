// Model summary of a GGUF file and human/JSON rendering of metadata values.
#include "gguf/gguf_summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace edgellm::gguf {
namespace {

// Reads an integer hyperparameter; per-layer arrays (e.g. OpenELM head counts) give their
// maximum. Values of other types are ignored rather than failing the whole summary.
std::optional<uint64_t> hparam(const file& f, const std::string& key) {
    const value* v = f.find(key);
    if (!v) return std::nullopt;
    try {
        if (v->is_integer()) return v->as_u64();
        if (v->type == value_type::array) {
            std::optional<uint64_t> best;
            for (const auto& it : v->as_array().items)
                if (it.is_integer()) best = std::max(best.value_or(0), it.as_u64());
            return best;
        }
    } catch (const error&) {
    }
    return std::nullopt;
}

std::string elem_noun(value_type t, size_t n) {
    if (t == value_type::string) return n == 1 ? "string" : "strings";
    if (t == value_type::array) return n == 1 ? "array" : "arrays";
    return std::string(value_type_name(t)) + (n == 1 ? " value" : " values");
}

std::string escape_for_display(std::string_view s, size_t max_chars) {
    std::string out;
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (n >= max_chars) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
        // UTF-8 continuation bytes do not start a new character.
        if ((c & 0xc0) != 0x80) ++n;
    }
    return out;
}

nlohmann::json float_json(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    return d;
}

}  // namespace

std::string file_type_name(uint64_t ft) {
    static const std::map<uint64_t, const char*> k_names = {
        {0, "F32"},       {1, "F16"},       {2, "Q4_0"},      {3, "Q4_1"},     {7, "Q8_0"},     {8, "Q5_0"},
        {9, "Q5_1"},      {10, "Q2_K"},     {11, "Q3_K_S"},   {12, "Q3_K_M"},  {13, "Q3_K_L"},  {14, "Q4_K_S"},
        {15, "Q4_K_M"},   {16, "Q5_K_S"},   {17, "Q5_K_M"},   {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"},
        {21, "Q2_K_S"},   {22, "IQ3_XS"},   {23, "IQ3_XXS"},  {24, "IQ1_S"},   {25, "IQ4_NL"},  {26, "IQ3_S"},
        {27, "IQ3_M"},    {28, "IQ2_S"},    {29, "IQ2_M"},    {30, "IQ4_XS"},  {31, "IQ1_M"},   {32, "BF16"},
        {36, "TQ1_0"},    {37, "TQ2_0"},    {38, "MXFP4_MOE"},
    };
    auto it = k_names.find(ft);
    return it == k_names.end() ? fmt::format("unknown ({})", ft) : it->second;
}

std::string quantization_level(const file& f) {
    if (auto ft = hparam(f, "general.file_type")) {
        const std::string name = file_type_name(*ft);
        if (name.rfind("unknown", 0) != 0) return name;
    }
    std::map<ggml_type, uint64_t> bytes;
    for (const auto& t : f.tensors())
        if (t.n_dims >= 2) bytes[t.type] += t.size_bytes;
    if (bytes.empty()) return "unknown";
    const auto best = std::max_element(bytes.begin(), bytes.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    std::string out(type_name(best->first));
    for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

model_summary summarize(const file& f) {
    model_summary s;
    if (const value* v = f.find("general.architecture"); v && v->type == value_type::string)
        s.architecture = v->as_string();
    if (const value* v = f.find("general.name"); v && v->type == value_type::string) s.name = v->as_string();
    if (auto ft = hparam(f, "general.file_type")) s.file_type = file_type_name(*ft);
    s.file_size_bytes = f.file_size();
    s.n_tensors = f.tensors().size();
    std::map<std::string, uint64_t> mix;
    for (const auto& t : f.tensors()) {
        s.n_params += static_cast<uint64_t>(t.n_elements());
        s.tensor_data_bytes += t.size_bytes;
        ++mix[std::string(type_name(t.type))];
    }
    s.type_mix.assign(mix.begin(), mix.end());
    std::stable_sort(s.type_mix.begin(), s.type_mix.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    const std::string a = s.architecture + ".";
    s.context_length = hparam(f, a + "context_length");
    s.n_layers = hparam(f, a + "block_count");
    s.n_heads = hparam(f, a + "attention.head_count");
    s.n_kv_heads = hparam(f, a + "attention.head_count_kv");
    s.n_embd = hparam(f, a + "embedding_length");
    s.n_ff = hparam(f, a + "feed_forward_length");
    if (const value* v = f.find("tokenizer.ggml.tokens"); v && v->type == value_type::array)
        s.n_vocab = v->as_array().items.size();
    else
        s.n_vocab = hparam(f, a + "vocab_size");
    if (const value* v = f.find("tokenizer.ggml.model"); v && v->type == value_type::string)
        s.tokenizer_model = v->as_string();
    s.has_chat_template = f.has("tokenizer.chat_template");
    return s;
}

std::string format_type_mix(const model_summary& s) {
    std::string out;
    for (size_t i = 0; i < s.type_mix.size(); ++i) {
        if (i) out += ", ";
        out += fmt::format("{}: {}", s.type_mix[i].first, s.type_mix[i].second);
        if (i == 0) out += s.type_mix[i].second == 1 ? " tensor" : " tensors";
    }
    return out;
}

std::string value_type_label(const value& v) {
    if (v.type != value_type::array) return std::string(value_type_name(v.type));
    return "array[" + std::string(value_type_name(v.as_array().elem_type)) + "]";
}

std::string format_value(const value& v, size_t max_items, size_t max_string_chars) {
    switch (v.type) {
        case value_type::string: return "'" + escape_for_display(v.as_string(), max_string_chars) + "'";
        case value_type::boolean: return v.as_bool() ? "true" : "false";
        case value_type::f32: return fmt::format("{}", static_cast<float>(v.as_f64()));
        case value_type::f64: return fmt::format("{}", v.as_f64());
        case value_type::array: {
            const auto& arr = v.as_array();
            const size_t n = arr.items.size();
            const size_t shown = std::min(n, max_items);
            std::string out = "[";
            if (n > max_items) out += fmt::format("{} {}: ", n, elem_noun(arr.elem_type, n));
            for (size_t i = 0; i < shown; ++i) {
                if (i) out += ", ";
                out += format_value(arr.items[i], max_items, max_string_chars);
            }
            if (n > shown) out += ", ...";
            return out + "]";
        }
        default:
            if (const auto* u = std::get_if<uint64_t>(&v.data)) return std::to_string(*u);
            if (const auto* i = std::get_if<int64_t>(&v.data)) return std::to_string(*i);
            return "?";
    }
}

nlohmann::json value_to_json(const value& v, size_t max_items) {
    switch (v.type) {
        case value_type::string: return v.as_string();
        case value_type::boolean: return v.as_bool();
        case value_type::f32: case value_type::f64: return float_json(v.as_f64());
        case value_type::array: {
            const auto& arr = v.as_array();
            const bool cut = max_items != 0 && arr.items.size() > max_items;
            const size_t shown = cut ? max_items : arr.items.size();
            auto items = nlohmann::json::array();
            for (size_t i = 0; i < shown; ++i) items.push_back(value_to_json(arr.items[i], max_items));
            if (!cut) return items;
            return {{"n_items", arr.items.size()},
                    {"elem_type", std::string(value_type_name(arr.elem_type))},
                    {"head", std::move(items)}};
        }
        default:
            if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
            if (const auto* i = std::get_if<int64_t>(&v.data)) return *i;
            return nullptr;
    }
}

}  // namespace edgellm::gguf
