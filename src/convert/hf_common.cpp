// Helpers shared by the HF -> GGUF converters.
#include "convert/hf_common.h"

#include <fmt/format.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "quant/quant.h"

namespace edgellm::convert::detail {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& p, bool required) {
    if (!fs::exists(p)) {
        if (required)
            throw error(fmt::format("{} is missing (needed to convert the model)", p.string()));
        return json();
    }
    std::ifstream in(p);
    try {
        return json::parse(in);
    } catch (const std::exception& e) {
        throw error(fmt::format("{}: not valid JSON: {}", p.string(), e.what()));
    }
}

int64_t config_int(const json& cfg, const char* key) {
    if (!cfg.contains(key) || !cfg[key].is_number_integer() || cfg[key].get<int64_t>() <= 0)
        throw error(fmt::format("config.json: '{}' is missing or not a positive integer", key));
    return cfg[key].get<int64_t>();
}

// The token id of tokenizer_config.json's `key` ("cls_token": "[CLS]" or {"content": "[CLS]"}).
std::optional<int32_t> special_id(const json& tok_cfg, const json& tok_json, const char* key) {
    if (!tok_cfg.is_object() || !tok_cfg.contains(key)) return std::nullopt;
    const json& v = tok_cfg[key];
    std::string text;
    if (v.is_string())
        text = v.get<std::string>();
    else if (v.is_object() && v.contains("content") && v["content"].is_string())
        text = v["content"].get<std::string>();
    else
        return std::nullopt;
    if (tok_json.contains("added_tokens"))
        for (const json& a : tok_json["added_tokens"])
            if (a.value("content", "") == text && a.contains("id")) return a["id"].get<int32_t>();
    const json& vocab = tok_json.at("model").at("vocab");
    if (!vocab.is_object() || !vocab.contains(text)) return std::nullopt;
    return vocab[text].get<int32_t>();
}

uint32_t file_type_of(ggml_type t) {
    switch (t) {
        case ggml_type::f32:
            return 0;
        case ggml_type::f16:
            return 1;
        case ggml_type::q8_0:
            return 7;
        case ggml_type::bf16:
            return 32;
        default:
            throw usage_error("unsupported --outtype");
    }
}

namespace {

// Which GGUF type a tensor gets (llama.cpp: 1-D tensors, position and token-type embeddings stay
// f32; a row that is not whole q8_0 blocks falls back to f16).
ggml_type tensor_type(const std::string& gguf_name, const st_tensor& t, ggml_type outtype) {
    if (t.shape.size() <= 1 || gguf_name == "position_embd.weight" ||
        gguf_name == "token_types.weight")
        return ggml_type::f32;
    if (outtype == ggml_type::q8_0 && t.shape.back() % 32 != 0) return ggml_type::f16;
    return outtype;
}

}  // namespace

void add_tensors(
    gguf::writer& w, const safetensors_set& st,
    const std::function<std::string(const std::string&)>& map,
    const std::function<void(const std::string& gguf_name, std::vector<float>& data)>& transform,
    ggml_type outtype, convert_report& rep,
    const std::function<int64_t(const std::string& gguf_name)>& max_rows) {
    for (const auto& [name, t] : st.tensors()) {
        const std::string gname = map(name);
        if (gname.empty()) {
            rep.skipped.push_back(name);
            continue;
        }
        if (t.shape.empty() || t.shape.size() > 2)
            throw error(fmt::format("tensor '{}' has {} dimensions; expected 1 or 2", name,
                                    t.shape.size()));
        const ggml_type type = tensor_type(gname, t, outtype);
        std::vector<int64_t> ne(t.shape.rbegin(),
                                t.shape.rend());  // GGUF lists the contiguous dim first
        // Rows past max_rows (Gemma 3's out-of-vocabulary embedding rows) are dropped.
        int64_t n_rows = ne.size() == 2 ? ne[1] : 1;
        if (max_rows && ne.size() == 2) {
            const int64_t m = max_rows(gname);
            if (m > 0 && m < n_rows) ne[1] = n_rows = m;
        }
        const st_tensor* tp = &t;
        w.add_tensor_lazy(gname, type, ne, [tp, type, gname, transform, n_rows](uint8_t* dst, size_t size) {
            std::vector<float> f = safetensors_set::to_f32(*tp);
            if (transform) transform(gname, f);
            const int64_t n_cols = tp->shape.back();
            const size_t rs = row_size(type, n_cols);
            if (static_cast<int64_t>(f.size()) / n_cols < n_rows || rs * static_cast<size_t>(n_rows) != size)
                throw error("internal: tensor size mismatch");
            for (int64_t r = 0; r < n_rows; ++r)
                quantize_row(type, f.data() + r * n_cols, dst + static_cast<size_t>(r) * rs,
                             n_cols);
        });
        ++rep.n_tensors;
    }
}

std::vector<bool> fill_vocab(const nlohmann::json& tok, const nlohmann::json& vocab, const std::string& where,
                             std::vector<std::string>& tokens, std::vector<int32_t>& types) {
    const int64_t n_vocab = static_cast<int64_t>(tokens.size());
    std::vector<bool> have(tokens.size(), false);
    for (const auto& [text, id] : vocab.items()) {
        const int64_t i = id.get<int64_t>();
        if (i < 0 || i >= n_vocab)
            throw error(fmt::format("{}: token '{}' has id {} out of range", where, text, i));
        tokens[static_cast<size_t>(i)] = text;
        types[static_cast<size_t>(i)] = normal;
        have[static_cast<size_t>(i)] = true;
    }
    if (tok.contains("added_tokens"))
        for (const nlohmann::json& a : tok["added_tokens"]) {
            const int64_t i = a.value("id", int64_t{-1});
            if (i < 0 || i >= n_vocab) continue;
            tokens[static_cast<size_t>(i)] = a.value("content", "");
            types[static_cast<size_t>(i)] = a.value("special", false) ? control : user_defined;
            have[static_cast<size_t>(i)] = true;
        }
    return have;
}

}  // namespace edgellm::convert::detail

namespace edgellm::convert::detail {

void write_special_tokens(gguf::writer& w, const fs::path& dir, const json& cfg,
                          const std::vector<std::string>& tokens) {
    using gguf::value;
    const json tok_cfg = read_json(dir / "tokenizer_config.json", false);
    const int64_t n_vocab = static_cast<int64_t>(tokens.size());
    const auto find = [&](const std::string& text) -> std::optional<int32_t> {
        for (size_t i = 0; i < tokens.size(); ++i)
            if (tokens[i] == text) return static_cast<int32_t>(i);
        return std::nullopt;
    };
    const auto name_of = [&](const std::string& key) -> std::string {
        if (!tok_cfg.is_object() || !tok_cfg.contains(key)) return "";
        const json& v = tok_cfg[key];
        if (v.is_string()) return v.get<std::string>();
        if (v.is_object() && v.contains("content") && v["content"].is_string())
            return v["content"].get<std::string>();
        return "";
    };
    for (const auto& [kind, key] :
         {std::pair{"bos", "bos_token_id"}, std::pair{"eos", "eos_token_id"},
          std::pair{"unk", "unknown_token_id"}, std::pair{"pad", "padding_token_id"}}) {
        std::optional<int32_t> id;
        if (const std::string name = name_of(std::string(kind) + "_token"); !name.empty())
            id = find(name);
        const std::string cfg_key = std::string(kind) + "_token_id";
        if (!id && cfg.contains(cfg_key) && cfg[cfg_key].is_number_integer())
            id = cfg[cfg_key].get<int32_t>();
        if (id && *id >= 0 && *id < n_vocab)
            w.set(std::string("tokenizer.ggml.") + key,
                  value::make_u32(static_cast<uint32_t>(*id)));
    }
    // add_bos / add_eos: tokenizer.json's TemplateProcessing (its single-sequence template
    // starting with the BOS or CLS token, ending with the EOS token), overridden by
    // tokenizer_config.json's add_bos_token / add_eos_token, as SpecialVocab decides.
    std::optional<bool> add_bos, add_eos;
    const json tok = read_json(dir / "tokenizer.json", false);
    if (tok.is_object() && tok.contains("post_processor") && tok["post_processor"].is_object()) {
        const json& pp = tok["post_processor"];
        const json procs = pp.contains("processors") && pp["processors"].is_array()
                               ? pp["processors"]
                               : json::array({pp});
        const auto special = [](const json& e) {
            return e.is_object() && e.contains("SpecialToken") && e["SpecialToken"].is_object()
                       ? e["SpecialToken"].value("id", std::string())
                       : std::string();
        };
        for (const json& p : procs) {
            if (!p.is_object() || p.value("type", "") != "TemplateProcessing" ||
                !p.contains("single") || !p["single"].is_array() || p["single"].size() < 2)
                continue;
            const std::string first = special(p["single"].front()),
                              last = special(p["single"].back());
            if (!first.empty())
                add_bos = first == name_of("bos_token") || first == name_of("cls_token");
            if (!last.empty()) add_eos = last == name_of("eos_token");
        }
    }
    for (const auto& [flag, from_template] :
         {std::pair{"add_bos_token", add_bos}, std::pair{"add_eos_token", add_eos}}) {
        std::optional<bool> v = from_template;
        if (tok_cfg.is_object() && tok_cfg.contains(flag) && tok_cfg[flag].is_boolean())
            v = tok_cfg[flag].get<bool>();
        if (v) w.set(std::string("tokenizer.ggml.") + flag, value::make_bool(*v));
    }
    std::string tmpl;
    if (tok_cfg.is_object() && tok_cfg.contains("chat_template") &&
        tok_cfg["chat_template"].is_string())
        tmpl = tok_cfg["chat_template"].get<std::string>();
    else if (fs::exists(dir / "chat_template.jinja")) {
        std::ifstream in(dir / "chat_template.jinja");
        tmpl.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (!tmpl.empty()) w.set("tokenizer.chat_template", value::make_string(tmpl));
}

}  // namespace edgellm::convert::detail
