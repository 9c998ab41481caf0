// HF decoder folders -> GGUF: LlamaForCausalLM / MistralForCausalLM (arch "llama", Q and K rows
// permuted from HF's rotate-half layout back to llama.cpp's interleaved pairs, as
// convert_hf_to_gguf.py's LlamaModel does) and Qwen2ForCausalLM (arch "qwen2", NeoX RoPE: no
// permutation; Q/K/V biases). Byte-level BPE tokenizers (tokenizer.json: vocab, merges, added
// tokens; the pre-tokenizer regex names tokenizer.ggml.pre), special tokens, the chat template.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <map>
#include <regex>

#include "convert/hf_common.h"
#include "core/error.h"

namespace edgellm::convert::detail {
namespace {

namespace fs = std::filesystem;
using gguf::value;
using gguf::value_type;
using nlohmann::json;

// The pre-tokenizer regexes of the BPE families we name (from their tokenizer.json files) and
// llama.cpp's name for each.
const std::map<std::string, std::string>& known_pre_regexes() {
    static const std::map<std::string, std::string> m = {
        {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
         "qwen2"},
        {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
         "llama-bpe"},
    };
    return m;
}

std::string pre_tokenizer_name(const json& tok, const fs::path& file) {
    const json pt = tok.value("pre_tokenizer", json());
    std::vector<json> parts;
    if (pt.is_object() && pt.value("type", "") == "Sequence" && pt.contains("pretokenizers"))
        for (const json& p : pt["pretokenizers"]) parts.push_back(p);
    else if (pt.is_object())
        parts.push_back(pt);
    std::string regex;
    bool byte_level_regex = false;
    for (const json& p : parts) {
        const std::string type = p.value("type", "");
        if (type == "Split" && p.contains("pattern") && p["pattern"].contains("Regex"))
            regex = p["pattern"]["Regex"].get<std::string>();
        else if (type == "ByteLevel" && p.value("use_regex", true))
            byte_level_regex = true;
    }
    if (regex.empty() && byte_level_regex) return "gpt-2";
    auto it = known_pre_regexes().find(regex);
    if (it != known_pre_regexes().end()) return it->second;
    std::string known;
    for (const auto& [r, n] : known_pre_regexes()) known += (known.empty() ? "" : ", ") + n;
    throw error(fmt::format(
        "{}: the pre-tokenizer ({}) is not one edgellm convert knows (known: {}, gpt-2)",
        file.string(), regex.empty() ? pt.dump() : "regex " + regex, known));
}

void write_bpe_vocab(gguf::writer& w, const fs::path& dir, const json& cfg, int64_t n_vocab_model) {
    const fs::path tok_path = dir / "tokenizer.json";
    const json tok = read_json(tok_path, true);
    const json tok_cfg = read_json(dir / "tokenizer_config.json", false);
    const json& model = tok.value("model", json());
    if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") ||
        !model.contains("merges"))
        throw error(
            fmt::format("{}: expected a BPE tokenizer (model.type \"BPE\" with vocab and merges)",
                        tok_path.string()));
    if (model.value("byte_fallback", false))
        throw error(fmt::format(
            "{}: SentencePiece-style BPE (byte_fallback) is not supported by edgellm convert yet; "
            "only byte-level BPE",
            tok_path.string()));
    const json& vocab = model["vocab"];
    int64_t n_vocab =
        std::max<int64_t>(cfg.value("vocab_size", int64_t{0}), static_cast<int64_t>(vocab.size()));
    if (tok.contains("added_tokens"))
        for (const json& a : tok["added_tokens"])
            n_vocab = std::max<int64_t>(n_vocab, a.value("id", int64_t{0}) + 1);
    if (n_vocab != n_vocab_model)
        throw error(fmt::format("the tokenizer has {} tokens but the token embeddings have {} rows",
                                n_vocab, n_vocab_model));
    std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
    std::vector<int32_t> types(static_cast<size_t>(n_vocab), unused);
    fill_vocab(tok, vocab, tok_path.string(), tokens, types);
    std::vector<value> tv, ty, mv;
    for (int64_t i = 0; i < n_vocab; ++i) {
        const bool pad = types[static_cast<size_t>(i)] == unused;
        tv.push_back(
            value::make_string(pad ? fmt::format("[PAD{}]", i) : tokens[static_cast<size_t>(i)]));
        ty.push_back(value::make_i32(types[static_cast<size_t>(i)]));
    }
    for (const json& m : model["merges"]) {
        if (m.is_string())
            mv.push_back(value::make_string(m.get<std::string>()));
        else if (m.is_array() && m.size() == 2)
            mv.push_back(
                value::make_string(m[0].get<std::string>() + " " + m[1].get<std::string>()));
        else
            throw error(
                fmt::format("{}: a merge is neither \"a b\" nor [a, b]", tok_path.string()));
    }
    w.set("tokenizer.ggml.model", value::make_string("gpt2"));
    w.set("tokenizer.ggml.pre", value::make_string(pre_tokenizer_name(tok, tok_path)));
    w.set("tokenizer.ggml.tokens", value::make_array(value_type::string, std::move(tv)));
    w.set("tokenizer.ggml.token_type", value::make_array(value_type::i32, std::move(ty)));
    w.set("tokenizer.ggml.merges", value::make_array(value_type::string, std::move(mv)));
    // Special tokens as gguf-py's SpecialVocab finds them: tokenizer_config.json's names, else
    // config.json's *_token_id.
    for (const auto& [kind, key] :
         {std::pair{"bos", "bos_token_id"}, std::pair{"eos", "eos_token_id"},
          std::pair{"unk", "unknown_token_id"}, std::pair{"pad", "padding_token_id"}}) {
        std::optional<int32_t> id =
            special_id(tok_cfg, tok, (std::string(kind) + "_token").c_str());
        const std::string cfg_key = std::string(kind) + "_token_id";
        if (!id && cfg.contains(cfg_key) && cfg[cfg_key].is_number_integer())
            id = cfg[cfg_key].get<int32_t>();
        if (id && *id >= 0 && *id < n_vocab)
            w.set(std::string("tokenizer.ggml.") + key,
                  value::make_u32(static_cast<uint32_t>(*id)));
    }
    for (const char* flag : {"add_bos_token", "add_eos_token"})
        if (tok_cfg.is_object() && tok_cfg.contains(flag) && tok_cfg[flag].is_boolean())
            w.set(std::string("tokenizer.ggml.") + flag,
                  value::make_bool(tok_cfg[flag].get<bool>()));
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

std::string map_decoder_tensor(const std::string& name) {
    static const std::map<std::string, std::string> fixed = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"}};
    if (auto it = fixed.find(name); it != fixed.end()) return it->second;
    static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
    static const std::map<std::string, std::string> per_layer = {
        {"input_layernorm", "attn_norm"},    {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"}};
    std::smatch m;
    if (std::regex_match(name, m, layer)) {
        if (m[2].str().find("rotary_emb") != std::string::npos) return "";
        if (auto it = per_layer.find(m[2].str()); it != per_layer.end())
            return fmt::format("blk.{}.{}.{}", m[1].str(), it->second, m[3].str());
    }
    throw error(fmt::format("cannot map tensor '{}' to a GGUF name", name));
}

// HF's rotate-half Q/K rows back to interleaved pairs: within each head of head_dim rows, new row
// 2i + j is old row j * head_dim / 2 + i (LlamaModel.permute in convert_hf_to_gguf.py).
void unpermute_rows(std::vector<float>& w, int64_t n_head, int64_t n_cols) {
    const int64_t n_rows = static_cast<int64_t>(w.size()) / n_cols, hd = n_rows / n_head,
                  half = hd / 2;
    std::vector<float> out(w.size());
    for (int64_t h = 0; h < n_head; ++h)
        for (int64_t i = 0; i < half; ++i)
            for (int64_t j = 0; j < 2; ++j)
                std::copy_n(&w[static_cast<size_t>((h * hd + j * half + i) * n_cols)], n_cols,
                            &out[static_cast<size_t>((h * hd + 2 * i + j) * n_cols)]);
    w.swap(out);
}

}  // namespace

bool convert_decoder(const fs::path& dir, const json& cfg, const std::string& hf_arch,
                     const std::string& out_path, const convert_options& o, convert_report& rep) {
    static const std::map<std::string, std::string> archs = {{"LlamaForCausalLM", "llama"},
                                                             {"MistralForCausalLM", "llama"},
                                                             {"Qwen2ForCausalLM", "qwen2"}};
    auto it = archs.find(hf_arch);
    if (it == archs.end()) return false;
    const std::string arch = it->second;
    rep.arch = arch;
    if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null())
        throw error(
            fmt::format("config.json: rope_scaling {} is not supported by edgellm convert yet",
                        cfg["rope_scaling"].dump()));
    // RoPE: top-level rope_theta (transformers 4), or rope_parameters {rope_theta, rope_type}
    // (transformers 5 writes only this); a scaled rope_type is not supported yet.
    float rope_theta = cfg.value("rope_theta", 10000.0f);
    if (cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object()) {
        const auto& rp = cfg["rope_parameters"];
        const std::string type = rp.value("rope_type", std::string("default"));
        if (type != "default")
            throw error(fmt::format("config.json: rope_parameters {} (rope_type '{}') is not supported by edgellm "
                                    "convert yet (default only)", rp.dump(), type));
        if (!cfg.contains("rope_theta")) rope_theta = rp.value("rope_theta", rope_theta);
    }
    const std::string act = cfg.value("hidden_act", "silu");
    if (act != "silu")
        throw error(fmt::format("config.json: hidden_act '{}' is not supported (silu)", act));
    const int64_t n_layer = config_int(cfg, "num_hidden_layers"),
                  n_embd = config_int(cfg, "hidden_size");
    const int64_t n_head = config_int(cfg, "num_attention_heads");
    const int64_t n_head_kv =
        cfg.contains("num_key_value_heads") ? config_int(cfg, "num_key_value_heads") : n_head;
    const int64_t head_dim = cfg.contains("head_dim") && cfg["head_dim"].is_number_integer()
                                 ? cfg["head_dim"].get<int64_t>()
                                 : n_embd / n_head;

    const safetensors_set st = safetensors_set::open_dir(dir.string());
    const st_tensor* embd = st.find("model.embed_tokens.weight");
    if (!embd || embd->shape.size() != 2)
        throw error("the weights have no model.embed_tokens.weight matrix");

    gguf::writer w;
    w.set("general.architecture", value::make_string(arch));
    w.set("general.type", value::make_string("model"));
    const std::string name = fs::absolute(dir).lexically_normal().filename().string();
    w.set("general.name", value::make_string(name.empty() ? "model" : name));
    const auto u32 = [](int64_t v) { return value::make_u32(static_cast<uint32_t>(v)); };
    w.set(arch + ".block_count", u32(n_layer));
    w.set(arch + ".context_length", u32(config_int(cfg, "max_position_embeddings")));
    w.set(arch + ".embedding_length", u32(n_embd));
    w.set(arch + ".feed_forward_length", u32(config_int(cfg, "intermediate_size")));
    w.set(arch + ".attention.head_count", u32(n_head));
    w.set(arch + ".attention.head_count_kv", u32(n_head_kv));
    w.set(arch + ".rope.freq_base", value::make_f32(rope_theta));
    w.set(arch + ".attention.layer_norm_rms_epsilon",
          value::make_f32(cfg.value("rms_norm_eps", 1e-6f)));
    if (head_dim != n_embd / n_head) {
        w.set(arch + ".attention.key_length", u32(head_dim));
        w.set(arch + ".attention.value_length", u32(head_dim));
    }
    w.set("general.file_type", value::make_u32(file_type_of(o.outtype)));
    if (arch == "llama") {
        w.set("llama.vocab_size", u32(embd->shape[0]));
        w.set("llama.rope.dimension_count", u32(head_dim));
    }
    write_bpe_vocab(w, dir, cfg, embd->shape[0]);
    w.set("general.quantization_version", value::make_u32(2));

    std::function<void(const std::string&, std::vector<float>&)> transform;
    if (arch == "llama")
        transform = [n_head, n_head_kv, n_embd](const std::string& g, std::vector<float>& f) {
            const bool q = g.ends_with("attn_q.weight"), k = g.ends_with("attn_k.weight");
            if (q || k) unpermute_rows(f, q ? n_head : n_head_kv, n_embd);
        };
    add_tensors(w, st, map_decoder_tensor, transform, o.outtype, rep);
    for (int64_t il = 0; il < n_layer; ++il)
        if (!st.find(fmt::format("model.layers.{}.self_attn.q_proj.weight", il)))
            throw error(fmt::format("the weights have no layer {} (config.json says {} layers)", il,
                                    n_layer));
    w.write(out_path);
    rep.n_bytes = fs::file_size(out_path);
    return true;
}

}  // namespace edgellm::convert::detail
