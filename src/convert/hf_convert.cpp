// HF folder -> GGUF. Tensor names follow gguf-py's TensorNameMap, metadata llama.cpp's
// convert_hf_to_gguf.py (TextModel.set_gguf_parameters, BertModel.set_vocab, SpecialVocab).
#include "convert/hf_convert.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "convert/hf_common.h"
#include "convert/safetensors.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace edgellm::convert {
namespace {

namespace fs = std::filesystem;
using gguf::value;
using gguf::value_type;
using nlohmann::json;
using namespace detail;

// BERT and DistilBERT tensors: HF name -> GGUF name; "" skips (unused by an encoder for
// embeddings). With a classification head (`classifier`), BERT's pooler becomes cls (its tanh dense
// layer, which HF applies before the classifier) and DistilBERT's pre_classifier too (ReLU); the
// classifier is cls.output, as llama.cpp names it.
std::string map_bert_tensor(std::string name, bool classifier) {
    if (name.rfind("bert.", 0) == 0) name = name.substr(5);
    if (name.rfind("distilbert.", 0) == 0) name = name.substr(11);
    if (classifier) {
        for (const char* part : {"weight", "bias"}) {
            if (name == fmt::format("pooler.dense.{}", part) ||
                name == fmt::format("pre_classifier.{}", part))
                return fmt::format("cls.{}", part);
            if (name == fmt::format("classifier.{}", part))
                return fmt::format("cls.output.{}", part);
        }
    }
    if (name == "embeddings.position_ids" || name.rfind("pooler.", 0) == 0 ||
        name.rfind("cls.predictions", 0) == 0 || name.rfind("cls.seq_relationship", 0) == 0 ||
        name.rfind("vocab_", 0) == 0)
        return "";
    static const std::vector<std::pair<std::string, std::string>> fixed = {
        {"embeddings.word_embeddings.weight", "token_embd.weight"},
        {"embeddings.position_embeddings.weight", "position_embd.weight"},
        {"embeddings.token_type_embeddings.weight", "token_types.weight"},
        {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
        {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
    };
    for (const auto& [hf, g] : fixed)
        if (name == hf) return g;
    static const std::regex layer(R"(encoder\.layer\.(\d+)\.(.+)\.(weight|bias))");
    static const std::vector<std::pair<std::string, std::string>> per_layer = {
        {"attention.self.query", "attn_q"},
        {"attention.self.key", "attn_k"},
        {"attention.self.value", "attn_v"},
        {"attention.output.dense", "attn_output"},
        {"attention.output.LayerNorm", "attn_output_norm"},
        {"intermediate.dense", "ffn_up"},
        {"output.dense", "ffn_down"},
        {"output.LayerNorm", "layer_output_norm"},
    };
    static const std::regex distil_layer(R"(transformer\.layer\.(\d+)\.(.+)\.(weight|bias))");
    static const std::vector<std::pair<std::string, std::string>> distil_per_layer = {
        {"attention.q_lin", "attn_q"},
        {"attention.k_lin", "attn_k"},
        {"attention.v_lin", "attn_v"},
        {"attention.out_lin", "attn_output"},
        {"sa_layer_norm", "attn_output_norm"},
        {"ffn.lin1", "ffn_up"},
        {"ffn.lin2", "ffn_down"},
        {"output_layer_norm", "layer_output_norm"},
    };
    std::smatch m;
    if (std::regex_match(name, m, layer))
        for (const auto& [hf, g] : per_layer)
            if (m[2] == hf) return fmt::format("blk.{}.{}.{}", m[1].str(), g, m[3].str());
    if (std::regex_match(name, m, distil_layer))
        for (const auto& [hf, g] : distil_per_layer)
            if (m[2] == hf) return fmt::format("blk.{}.{}.{}", m[1].str(), g, m[3].str());
    throw error(fmt::format("cannot map tensor '{}' to a GGUF name for architecture bert", name));
}

void write_bert_vocab(gguf::writer& w, const fs::path& dir, const json& cfg,
                      int64_t n_vocab_model) {
    const json tok = read_json(dir / "tokenizer.json", true);
    const json tok_cfg = read_json(dir / "tokenizer_config.json", false);
    if (!tok.contains("model") || tok["model"].value("type", "") != "WordPiece" ||
        !tok["model"].contains("vocab"))
        throw error(fmt::format(
            "{}: a BERT model needs a WordPiece tokenizer (model.type \"WordPiece\" with a vocab)",
            (dir / "tokenizer.json").string()));
    const json& vocab = tok["model"]["vocab"];
    const int64_t n_vocab =
        std::max<int64_t>(cfg.value("vocab_size", int64_t{0}), static_cast<int64_t>(vocab.size()));
    if (n_vocab != n_vocab_model)
        throw error(fmt::format("tokenizer.json has {} tokens but the word embeddings have {} rows",
                                n_vocab, n_vocab_model));
    std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
    std::vector<int32_t> types(static_cast<size_t>(n_vocab), unused);
    const std::vector<bool> have = fill_vocab(tok, vocab, "tokenizer.json", tokens, types);
    std::vector<value> tok_values, type_values;
    for (int64_t i = 0; i < n_vocab; ++i) {
        std::string t = have[static_cast<size_t>(i)] ? tokens[static_cast<size_t>(i)]
                                                     : fmt::format("[PAD{}]", i);
        // llama.cpp's "phantom space" vocab: word-initial pieces get U+2581, "##" continuations
        // lose it.
        if (types[static_cast<size_t>(i)] != control)
            t = t.rfind("##", 0) == 0 ? t.substr(2) : "\xE2\x96\x81" + t;
        tok_values.push_back(value::make_string(std::move(t)));
        type_values.push_back(value::make_i32(types[static_cast<size_t>(i)]));
    }
    w.set("tokenizer.ggml.token_type_count",
          value::make_u32(static_cast<uint32_t>(cfg.value("type_vocab_size", 1))));
    w.set("tokenizer.ggml.model", value::make_string("bert"));
    // WordPiece's pre-tokenisation is fixed by the model type in llama.cpp and edgellm alike.
    w.set("tokenizer.ggml.pre", value::make_string("default"));
    w.set("tokenizer.ggml.tokens", value::make_array(value_type::string, std::move(tok_values)));
    w.set("tokenizer.ggml.token_type", value::make_array(value_type::i32, std::move(type_values)));

    // Special tokens as gguf-py's SpecialVocab finds them: tokenizer_config.json's names, BOS
    // falling back to [CLS] and EOS to the token the post-processor's single template ends with.
    std::optional<int32_t> cls = special_id(tok_cfg, tok, "cls_token"),
                           sep = special_id(tok_cfg, tok, "sep_token");
    std::optional<int32_t> bos = special_id(tok_cfg, tok, "bos_token"),
                           eos = special_id(tok_cfg, tok, "eos_token");
    bool add_bos = false, add_eos = false;
    const json* single = nullptr;
    if (tok.contains("post_processor") && tok["post_processor"].is_object() &&
        tok["post_processor"].value("type", "") == "TemplateProcessing" &&
        tok["post_processor"].contains("single"))
        single = &tok["post_processor"]["single"];
    const auto template_id = [&](const json& e) -> std::optional<int32_t> {
        if (!e.contains("SpecialToken")) return std::nullopt;
        const std::string t = e["SpecialToken"].value("id", "");
        if (!vocab.contains(t)) return std::nullopt;
        return vocab[t].get<int32_t>();
    };
    if (single && single->is_array() && !single->empty()) {
        if (auto first = template_id(single->front()); first && (first == bos || first == cls)) {
            add_bos = true;
            if (!bos) bos = first;
        }
        if (auto last = template_id(single->back()); last) {
            if (!eos) eos = last;
            add_eos = last == eos;
        }
    }
    const auto set_id = [&](const char* key, std::optional<int32_t> id) {
        if (id)
            w.set(fmt::format("tokenizer.ggml.{}", key),
                  value::make_u32(static_cast<uint32_t>(*id)));
    };
    set_id("bos_token_id", bos);
    set_id("eos_token_id", eos);
    set_id("unknown_token_id", special_id(tok_cfg, tok, "unk_token"));
    set_id("seperator_token_id", sep);  // sic: llama.cpp's key
    set_id("padding_token_id", special_id(tok_cfg, tok, "pad_token"));
    set_id("cls_token_id", cls);
    set_id("mask_token_id", special_id(tok_cfg, tok, "mask_token"));
    w.set("tokenizer.ggml.add_bos_token", value::make_bool(add_bos));
    w.set("tokenizer.ggml.add_eos_token", value::make_bool(add_eos));
    w.set("tokenizer.ggml.add_sep_token", value::make_bool(false));
}

// sentence-transformers' pooling (modules.json -> the Pooling module's config.json), as
// llama.cpp's _try_set_pooling_type: 1 mean, 2 cls, 3 last; absent: no key.
std::optional<uint32_t> pooling_type(const fs::path& dir) {
    const json modules = read_json(dir / "modules.json", false);
    if (!modules.is_array()) return std::nullopt;
    for (const json& m : modules) {
        const std::string type = m.value("type", "");
        if (type.size() < 7 || type.substr(type.size() - 7) != "Pooling") continue;
        const json p = read_json(dir / m.value("path", "") / "config.json", true);
        if (p.value("pooling_mode_mean_tokens", false)) return 1;
        if (p.value("pooling_mode_cls_token", false)) return 2;
        if (p.value("pooling_mode_lasttoken", false)) return 3;
        const std::string mode = p.value("pooling_mode", "");
        if (mode == "mean") return 1;
        if (mode == "cls") return 2;
        if (mode == "lasttoken") return 3;
        throw error(fmt::format("{}: only mean, cls and last-token pooling are supported",
                                (dir / m.value("path", "") / "config.json").string()));
    }
    return std::nullopt;
}

}  // namespace

ggml_type parse_outtype(const std::string& s) {
    if (s == "f32") return ggml_type::f32;
    if (s == "f16") return ggml_type::f16;
    if (s == "bf16") return ggml_type::bf16;
    if (s == "q8_0") return ggml_type::q8_0;
    throw usage_error(fmt::format("--outtype '{}' is not supported (f32, f16, bf16, q8_0)", s));
}

convert_report convert_hf(const std::string& hf_dir, const std::string& out_path,
                          const convert_options& o) {
    const fs::path dir(hf_dir);
    if (!fs::is_directory(dir))
        throw usage_error(
            fmt::format("{} is not a directory (a Hugging Face model folder)", hf_dir));
    const json cfg = read_json(dir / "config.json", true);
    convert_report rep;
    if (cfg.contains("architectures") && cfg["architectures"].is_array() &&
        !cfg["architectures"].empty())
        rep.hf_architecture = cfg["architectures"][0].get<std::string>();
    else
        rep.hf_architecture = cfg.value("model_type", "");
    if (convert_decoder(dir, cfg, rep.hf_architecture, out_path, o, rep)) return rep;
    static const std::set<std::string> bert_names = {"BertModel",
                                                     "BertForMaskedLM",
                                                     "bert",
                                                     "BertForSequenceClassification",
                                                     "DistilBertModel",
                                                     "DistilBertForMaskedLM",
                                                     "DistilBertForSequenceClassification",
                                                     "distilbert"};
    if (!bert_names.count(rep.hf_architecture)) {
        std::string known =
            "BertModel, BertForMaskedLM, BertForSequenceClassification, DistilBertModel, "
            "DistilBertForSequenceClassification";
        for (const std::string& a : decoder_architectures()) known += ", " + a;
        throw usage_error(fmt::format(
            "architecture '{}' is not supported by edgellm convert (supported: {})",
            rep.hf_architecture.empty() ? "(none in config.json)" : rep.hf_architecture, known));
    }
    const uint32_t ftype = file_type_of(o.outtype);
    const bool distil =
        rep.hf_architecture.rfind("DistilBert", 0) == 0 || rep.hf_architecture == "distilbert";
    const bool classifier = rep.hf_architecture.ends_with("ForSequenceClassification");
    // DistilBERT's config spells the same fields differently and has no layer_norm_eps (1e-12).
    const char* k_layers = distil ? "n_layers" : "num_hidden_layers";
    const char* k_embd = distil ? "dim" : "hidden_size";
    const char* k_ff = distil ? "hidden_dim" : "intermediate_size";
    const char* k_heads = distil ? "n_heads" : "num_attention_heads";
    const std::string act = cfg.value(distil ? "activation" : "hidden_act", "gelu");

    const safetensors_set st = safetensors_set::open_dir(hf_dir);
    const st_tensor* embd = nullptr;
    for (const char* n :
         {"embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight",
          "distilbert.embeddings.word_embeddings.weight"})
        if (!embd) embd = st.find(n);
    if (!embd || embd->shape.size() != 2)
        throw error(
            "the weights have no embeddings.word_embeddings.weight matrix (is this a BERT "
            "checkpoint?)");

    rep.arch = "bert";
    gguf::writer w;
    w.set("general.architecture", value::make_string("bert"));
    w.set("general.type", value::make_string("model"));
    w.set("general.name",
          value::make_string(fs::absolute(dir).lexically_normal().filename().string().empty()
                                 ? "model"
                                 : fs::absolute(dir).lexically_normal().filename().string()));
    const int64_t n_layer = config_int(cfg, k_layers);
    w.set("bert.block_count", value::make_u32(static_cast<uint32_t>(n_layer)));
    w.set("bert.context_length",
          value::make_u32(static_cast<uint32_t>(config_int(cfg, "max_position_embeddings"))));
    w.set("bert.embedding_length", value::make_u32(static_cast<uint32_t>(config_int(cfg, k_embd))));
    w.set("bert.feed_forward_length",
          value::make_u32(static_cast<uint32_t>(config_int(cfg, k_ff))));
    w.set("bert.attention.head_count",
          value::make_u32(static_cast<uint32_t>(config_int(cfg, k_heads))));
    w.set("bert.attention.layer_norm_epsilon",
          value::make_f32(distil ? 1e-12f : cfg.value("layer_norm_eps", 1e-12f)));
    w.set("general.file_type", value::make_u32(ftype));
    w.set("bert.attention.causal", value::make_bool(false));
    if (auto pt = pooling_type(dir)) w.set("bert.pooling_type", value::make_u32(*pt));
    if (act != "gelu")
        throw error(fmt::format("config.json: activation '{}' is not supported (gelu)", act));
    if (cfg.value("position_embedding_type", "absolute") != "absolute")
        throw error(
            fmt::format("config.json: position_embedding_type '{}' is not supported (absolute)",
                        cfg.value("position_embedding_type", "")));
    if (distil && cfg.value("sinusoidal_pos_embds", false))
        throw error(
            "config.json: sinusoidal_pos_embds is not supported (learned position embeddings "
            "only)");
    if (classifier) {
        // Labels in id order (config.json id2label), as llama.cpp writes them; the head's
        // activation is edgellm's own key: HF's BERT pooler is tanh, DistilBERT's pre_classifier
        // ReLU.
        std::vector<value> labels;
        if (cfg.contains("id2label") && cfg["id2label"].is_object()) {
            std::map<int64_t, std::string> by_id;
            for (const auto& [k, v] : cfg["id2label"].items())
                by_id[std::stoll(k)] = v.get<std::string>();
            for (const auto& [k, v] : by_id) labels.push_back(value::make_string(v));
        }
        if (!labels.empty())
            w.set("bert.classifier.output_labels",
                  value::make_array(value_type::string, std::move(labels)));
        w.set("edgellm.classifier.activation", value::make_string(distil ? "relu" : "tanh"));
    }
    write_bert_vocab(w, dir, cfg, embd->shape[0]);
    w.set("general.quantization_version", value::make_u32(2));

    add_tensors(
        w, st, [classifier](const std::string& n) { return map_bert_tensor(n, classifier); },
        nullptr, o.outtype, rep);
    for (int64_t il = 0; il < n_layer; ++il) {
        bool found = false;
        for (const char* pattern : {"encoder.layer.{}.attention.self.query.weight",
                                    "bert.encoder.layer.{}.attention.self.query.weight",
                                    "transformer.layer.{}.attention.q_lin.weight",
                                    "distilbert.transformer.layer.{}.attention.q_lin.weight"})
            found = found || st.find(fmt::format(fmt::runtime(pattern), il)) != nullptr;
        if (!found)
            throw error(fmt::format("the weights have no layer {} (config.json says {} layers)", il,
                                    n_layer));
    }
    if (classifier && !st.find("classifier.weight"))
        throw error("a sequence-classification checkpoint without classifier.weight");
    w.write(out_path);
    rep.n_bytes = fs::file_size(out_path);
    return rep;
}

}  // namespace edgellm::convert
