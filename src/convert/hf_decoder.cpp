// HF decoder folders -> GGUF, as convert_hf_to_gguf.py writes them: LlamaForCausalLM /
// MistralForCausalLM (arch "llama", Q and K rows permuted from HF's rotate-half layout back to
// llama.cpp's interleaved pairs, as LlamaModel does), Qwen2ForCausalLM (arch "qwen2": NeoX RoPE, no
// permutation; Q/K/V biases), Qwen3ForCausalLM (per-head q_norm / k_norm), GemmaForCausalLM /
// Gemma2ForCausalLM / Gemma3ForCausalLM (norm weights stored as 1 + w; Gemma 2/3's extra norms,
// soft caps, sliding window; Gemma 3's q/k norms and local RoPE base) and Phi3ForCausalLM (fused
// qkv and gate_up kept fused). Vocabularies: byte-level BPE from tokenizer.json (the pre-tokenizer
// regex names tokenizer.ggml.pre) or SentencePiece from tokenizer.model (hf_spm.cpp); special
// tokens and the chat template.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <map>
#include <optional>
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
    std::vector<std::string> names;
    for (int64_t i = 0; i < n_vocab; ++i) {
        const bool pad = types[static_cast<size_t>(i)] == unused;
        names.push_back(pad ? fmt::format("[PAD{}]", i) : tokens[static_cast<size_t>(i)]);
        tv.push_back(value::make_string(names.back()));
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
    write_special_tokens(w, dir, cfg, names);
}

// HF tensor name -> GGUF name for `arch` (gguf-py's TensorNameMap for these families); "" skips.
std::string map_decoder_tensor(const std::string& name, const std::string& arch) {
    const bool gemma_norms = arch == "gemma2" || arch == "gemma3";
    if (name == "model.embed_tokens.weight") return "token_embd.weight";
    if (name == "model.norm.weight") return "output_norm.weight";
    // Gemma and Gemma 2 always tie the output to the embeddings; llama.cpp skips a stray lm_head.
    if (name == "lm_head.weight") return arch == "gemma" || arch == "gemma2" ? "" : "output.weight";
    static const std::regex layer(R"(model\.layers\.(\d+)\.(.+)\.(weight|bias))");
    static const std::map<std::string, std::string> per_layer = {
        {"input_layernorm", "attn_norm"},
        {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"},
        {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},
        {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
        {"self_attn.q_norm", "attn_q_norm"},
        {"self_attn.k_norm", "attn_k_norm"},
        {"self_attn.qkv_proj", "attn_qkv"},
        {"mlp.gate_up_proj", "ffn_up"},
        {"pre_feedforward_layernorm", "ffn_norm"},
        {"post_feedforward_layernorm", "post_ffw_norm"}};
    std::smatch m;
    if (std::regex_match(name, m, layer)) {
        std::string part = m[2].str();
        if (part.find("rotary_emb") != std::string::npos) return "";
        // Gemma 2 / 3 normalise the attention output with post_attention_layernorm and the FFN
        // input with pre_feedforward_layernorm.
        if (gemma_norms && part == "post_attention_layernorm")
            return fmt::format("blk.{}.post_attention_norm.{}", m[1].str(), m[3].str());
        const bool fits = (part != "self_attn.q_norm" && part != "self_attn.k_norm") ||
                          arch == "qwen3" || arch == "gemma3";
        const bool phi_only = part == "self_attn.qkv_proj" || part == "mlp.gate_up_proj";
        const bool gemma_only =
            part == "pre_feedforward_layernorm" || part == "post_feedforward_layernorm";
        if (auto it = per_layer.find(part); it != per_layer.end() && fits &&
                                            (!phi_only || arch == "phi3") &&
                                            (!gemma_only || gemma_norms))
            return fmt::format("blk.{}.{}.{}", m[1].str(), it->second, m[3].str());
    }
    throw error(
        fmt::format("cannot map tensor '{}' to a GGUF name for architecture {}", name, arch));
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

const std::vector<std::string>& decoder_architectures() {
    static const std::vector<std::string> v = {
        "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",  "Qwen3ForCausalLM",
        "GemmaForCausalLM", "Gemma2ForCausalLM",  "Gemma3ForCausalLM", "Phi3ForCausalLM"};
    return v;
}

bool convert_decoder(const fs::path& dir, const json& cfg, const std::string& hf_arch,
                     const std::string& out_path, const convert_options& o, convert_report& rep) {
    static const std::map<std::string, std::string> archs = {
        {"LlamaForCausalLM", "llama"},   {"MistralForCausalLM", "llama"},
        {"Qwen2ForCausalLM", "qwen2"},   {"Qwen3ForCausalLM", "qwen3"},
        {"GemmaForCausalLM", "gemma"},   {"Gemma2ForCausalLM", "gemma2"},
        {"Gemma3ForCausalLM", "gemma3"}, {"Phi3ForCausalLM", "phi3"}};
    auto it = archs.find(hf_arch);
    if (it == archs.end()) return false;
    const std::string arch = it->second;
    const bool gemma = arch.starts_with("gemma");
    rep.arch = arch;
    // Linear RoPE scaling is written as llama.cpp writes it; anything else (llama3, yarn, Phi-3's
    // LongRoPE) needs extra tensors or keys edgellm convert does not write yet.
    const json rope_scaling = cfg.contains("rope_scaling") ? cfg["rope_scaling"] : json();
    std::optional<float> linear_factor;
    if (!rope_scaling.is_null()) {
        const std::string type =
            rope_scaling.is_object()
                ? rope_scaling.value("rope_type", rope_scaling.value("type", ""))
                : "";
        if (type == "default") {
            // transformers' "no scaling" spelled out; llama.cpp writes nothing for it either
        } else if (type == "linear" && rope_scaling.contains("factor") &&
                   rope_scaling["factor"].is_number())
            linear_factor = rope_scaling["factor"].get<float>();
        else
            throw error(
                fmt::format("config.json: rope_scaling {} is not supported by edgellm convert yet "
                            "(linear only)",
                            rope_scaling.dump()));
    }
    const auto str = [&cfg](const char* key) {
        return cfg.contains(key) && cfg[key].is_string() ? cfg[key].get<std::string>()
                                                         : std::string();
    };
    std::string act = gemma ? str("hidden_activation") : "";
    if (act.empty()) act = str("hidden_act");
    if (act.empty()) act = gemma ? "gelu_pytorch_tanh" : "silu";
    if (gemma ? (act != "gelu_pytorch_tanh" && act != "gelu") : act != "silu")
        throw error(fmt::format("config.json: hidden activation '{}' is not supported for {} ({})",
                                act, hf_arch, gemma ? "gelu_pytorch_tanh" : "silu"));
    // RoPE base: top-level rope_theta (transformers 4), or rope_parameters (transformers 5 writes
    // only that): {rope_theta, rope_type}, or per layer type {full_attention: {...},
    // sliding_attention: {...}} (Gemma 3). A scaled rope_type there is not supported yet.
    std::optional<float> rope_theta, rope_theta_swa;
    if (cfg.contains("rope_theta") && cfg["rope_theta"].is_number()) rope_theta = cfg["rope_theta"].get<float>();
    if (cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object()) {
        const json& rp = cfg["rope_parameters"];
        const auto read = [](const json& p, std::optional<float>& theta) {
            if (!p.is_object()) return;
            const std::string type = p.value("rope_type", std::string("default"));
            if (type != "default")
                throw error(fmt::format("config.json: rope_parameters {} (rope_type '{}') is not supported by "
                                        "edgellm convert yet (default only)", p.dump(), type));
            if (!theta && p.contains("rope_theta") && p["rope_theta"].is_number())
                theta = p["rope_theta"].get<float>();
        };
        if (rp.contains("full_attention") || rp.contains("sliding_attention")) {
            if (rp.contains("full_attention")) read(rp["full_attention"], rope_theta);
            if (rp.contains("sliding_attention")) read(rp["sliding_attention"], rope_theta_swa);
        } else {
            read(rp, rope_theta);
        }
    }
    const int64_t n_layer = config_int(cfg, "num_hidden_layers"),
                  n_embd = config_int(cfg, "hidden_size");
    const int64_t n_head = config_int(cfg, "num_attention_heads");
    const int64_t n_head_kv =
        cfg.contains("num_key_value_heads") ? config_int(cfg, "num_key_value_heads") : n_head;
    const bool has_head_dim = cfg.contains("head_dim") && cfg["head_dim"].is_number_integer();
    if (gemma && arch != "gemma3" && !has_head_dim)
        throw error(fmt::format("config.json: 'head_dim' is missing (needed for {})", hf_arch));
    const int64_t head_dim = has_head_dim       ? cfg["head_dim"].get<int64_t>()
                             : arch == "gemma3" ? 256
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
    const auto num = [&cfg](const char* key, double fallback) {
        return cfg.contains(key) && cfg[key].is_number() ? cfg[key].get<double>() : fallback;
    };
    const auto f32 = [&](const char* key, float fallback) {
        return value::make_f32(static_cast<float>(num(key, fallback)));
    };
    w.set(arch + ".block_count", u32(n_layer));
    w.set(arch + ".context_length", u32(arch == "gemma3" && !cfg.contains("max_position_embeddings")
                                            ? 131072
                                            : config_int(cfg, "max_position_embeddings")));
    w.set(arch + ".embedding_length", u32(n_embd));
    w.set(arch + ".feed_forward_length", u32(config_int(cfg, "intermediate_size")));
    w.set(arch + ".attention.head_count", u32(n_head));
    w.set(arch + ".attention.head_count_kv", u32(n_head_kv));
    // Gemma and Gemma 2's converters write no RoPE base (llama.cpp's default 10000 is theirs).
    if (arch != "gemma" && arch != "gemma2")
        w.set(arch + ".rope.freq_base",
              value::make_f32(rope_theta.value_or(arch == "gemma3" ? 1000000.0f : 10000.0f)));
    if (arch == "gemma3" && cfg.contains("rope_local_base_freq"))
        w.set(arch + ".rope.freq_base_swa", f32("rope_local_base_freq", 10000.0f));
    else if (arch == "gemma3" && rope_theta_swa)
        w.set(arch + ".rope.freq_base_swa", value::make_f32(*rope_theta_swa));
    if (linear_factor) {
        w.set(arch + ".rope.scaling.type", value::make_string("linear"));
        w.set(arch + ".rope.scaling.factor", value::make_f32(*linear_factor));
    }
    w.set(arch + ".attention.layer_norm_rms_epsilon", f32("rms_norm_eps", 1e-6f));
    // As TextModel: key/value length whenever config.json names head_dim (Gemma always).
    if (has_head_dim || head_dim != n_embd / n_head) {
        w.set(arch + ".attention.key_length", u32(head_dim));
        w.set(arch + ".attention.value_length", u32(head_dim));
    }
    w.set("general.file_type", value::make_u32(file_type_of(o.outtype)));
    if (arch == "llama") {
        w.set("llama.vocab_size", u32(embd->shape[0]));
        w.set("llama.rope.dimension_count", u32(head_dim));
    }
    if (arch == "gemma2") {
        w.set("gemma2.attn_logit_softcapping", f32("attn_logit_softcapping", 50.0f));
        w.set("gemma2.final_logit_softcapping", f32("final_logit_softcapping", 30.0f));
        w.set("gemma2.attention.sliding_window", u32(config_int(cfg, "sliding_window")));
    }
    if (arch == "gemma3") {
        if (cfg.contains("attn_logit_softcapping") && !cfg["attn_logit_softcapping"].is_null())
            throw error("config.json: Gemma 3 has no attn_logit_softcapping");
        if (num("final_logit_softcapping", 0.0) != 0.0)
            w.set("gemma3.final_logit_softcapping", f32("final_logit_softcapping", 0.0f));
        if (num("sliding_window_pattern", 0.0) != 1.0)
            w.set("gemma3.attention.sliding_window", u32(config_int(cfg, "sliding_window")));
    }
    if (arch == "phi3") {
        if (!cfg.contains("original_max_position_embeddings") ||
            !cfg["original_max_position_embeddings"].is_number_integer())
            throw error(
                "config.json: 'original_max_position_embeddings' is missing (needed for Phi-3)");
        w.set("phi3.rope.scaling.original_context_length",
              u32(cfg["original_max_position_embeddings"].get<int64_t>()));
        const double rot = num("partial_rotary_factor", 1.0);
        w.set("phi3.rope.dimension_count",
              u32(static_cast<int64_t>(rot * static_cast<double>(n_embd)) / n_head));
        w.set("phi3.attention.sliding_window",
              u32(cfg.contains("sliding_window") && cfg["sliding_window"].is_number_integer()
                      ? cfg["sliding_window"].get<int64_t>()
                      : 0));
    }

    // The vocabulary: byte-level BPE from tokenizer.json, or SentencePiece's tokenizer.model
    // (Gemma, Phi-3, and Llama / Mistral folders that ship one, as LlamaModel.set_vocab tries it
    // first). Phi-4-style Phi-3 folders name a GPT2Tokenizer: BPE.
    const json tok_cfg = read_json(dir / "tokenizer_config.json", false);
    const bool gpt2_class =
        tok_cfg.is_object() && tok_cfg.value("tokenizer_class", "") == "GPT2Tokenizer";
    const bool spm = gemma || (arch == "phi3" && !gpt2_class) ||
                     (arch == "llama" && fs::exists(dir / "tokenizer.model"));
    int64_t n_vocab_gguf = embd->shape[0];
    if (spm) {
        if (!fs::exists(dir / "tokenizer.model"))
            throw error(fmt::format("{} is missing ({} needs its SentencePiece model)",
                                    (dir / "tokenizer.model").string(), hf_arch));
        n_vocab_gguf =
            write_spm_vocab(w, dir, cfg, arch == "phi3" ? spm_flavour::phi3 : spm_flavour::base);
        // Gemma 3 drops the embedding rows past the vocabulary; the others must match it.
        if (n_vocab_gguf != embd->shape[0] && !(arch == "gemma3" && n_vocab_gguf < embd->shape[0]))
            throw error(
                fmt::format("the tokenizer has {} tokens but the token embeddings have {} rows",
                            n_vocab_gguf, embd->shape[0]));
        if (gemma) w.set("tokenizer.ggml.add_space_prefix", value::make_bool(false));
        if (arch == "gemma")  // CodeGemma's infill tokens, which llama.cpp's GemmaModel always sets
            for (const auto& [kind, id] :
                 {std::pair{"prefix", 67}, std::pair{"suffix", 69}, std::pair{"middle", 68},
                  std::pair{"fsep", 70}, std::pair{"eot", 107}})
                if (id < n_vocab_gguf)
                    w.set(fmt::format("tokenizer.ggml.{}_token_id", kind), u32(id));
    } else {
        write_bpe_vocab(w, dir, cfg, embd->shape[0]);
    }
    w.set("general.quantization_version", value::make_u32(2));

    std::function<void(const std::string&, std::vector<float>&)> transform;
    if (arch == "llama")
        transform = [n_head, n_head_kv, n_embd](const std::string& g, std::vector<float>& f) {
            const bool q = g.ends_with("attn_q.weight"), k = g.ends_with("attn_k.weight");
            if (q || k) unpermute_rows(f, q ? n_head : n_head_kv, n_embd);
        };
    else if (gemma)  // Gemma's RMSNorm scales by (1 + w): the GGUF stores 1 + w, as llama.cpp's
                     // does
        transform = [](const std::string& g, std::vector<float>& f) {
            if (g.ends_with("norm.weight"))
                for (float& x : f) x += 1.0f;
        };
    add_tensors(
        w, st, [&arch](const std::string& n) { return map_decoder_tensor(n, arch); }, transform,
        o.outtype, rep,
        [n_vocab_gguf](const std::string& g) {
            return g == "token_embd.weight" ? n_vocab_gguf : 0;
        });
    const char* probe = arch == "phi3" ? "model.layers.{}.self_attn.qkv_proj.weight"
                                       : "model.layers.{}.self_attn.q_proj.weight";
    for (int64_t il = 0; il < n_layer; ++il)
        if (!st.find(fmt::format(fmt::runtime(probe), il)))
            throw error(fmt::format("the weights have no layer {} (config.json says {} layers)", il,
                                    n_layer));
    w.write(out_path);
    rep.n_bytes = fs::file_size(out_path);
    return true;
}

}  // namespace edgellm::convert::detail
