// Filling a tokenizer vocab from GGUF metadata, with llama.cpp's per-family defaults.
#include "tokenizer/vocab.h"

#include <string_view>

#include "core/error.h"
#include "core/log.h"
#include "gguf/gguf.h"

namespace edgellm {

void apply_family_defaults(vocab& v) {
    switch (v.type) {
        case vocab_type::spm:
            v.bos = 1;
            v.eos = 2;
            v.unk = 0;
            v.add_bos = true;
            v.add_eos = false;
            v.add_space_prefix = true;
            break;
        case vocab_type::bpe:
            v.add_bos = false;
            v.add_eos = false;
            v.add_space_prefix = false;
            // These pre-tokenizers come from tokenizers whose post-processor adds BOS.
            if (v.pre == "llama3" || v.pre == "llama-v3" || v.pre == "llama-bpe" || v.pre == "falcon3" ||
                v.pre == "tekken" || v.pre == "chameleon")
                v.add_bos = true;
            if (v.pre == "jina-v1-en" || v.pre == "jina-v2-code" || v.pre == "roberta-bpe") v.add_sep = true;
            break;
        case vocab_type::wpm:
            v.bos = 101;  // [CLS]
            v.unk = 100;  // [UNK]
            v.sep = 102;  // [SEP]
            v.pad = 0;
            v.mask = 103;
            v.add_bos = true;
            v.add_sep = true;
            v.add_space_prefix = false;
            break;
    }
}

namespace {

std::string key_of(std::string_view suffix) { return "tokenizer.ggml." + std::string(suffix); }

// Reads an optional token id; ids outside the vocab (e.g. 0xFFFFFFFF meaning "none") are
// ignored, as llama.cpp does, keeping the default.
void read_id(const gguf::file& f, std::string_view suffix, int32_t n_vocab, int32_t& id) {
    const std::string key = key_of(suffix);
    const gguf::value* v = f.find(key);
    if (!v) return;
    if (!v->is_integer()) throw error("metadata key '" + key + "' is not an integer");
    int64_t x = -1;
    try {
        x = v->as_i64();
    } catch (const error&) {
        x = -1;  // an unsigned value beyond int64: certainly not a token id
    }
    if (x < 0 || x >= n_vocab) {
        log::debug("tokenizer: ignoring {} = {} (outside the vocab of {})", key, x, n_vocab);
        return;
    }
    id = static_cast<int32_t>(x);
}

void read_flag(const gguf::file& f, std::string_view suffix, bool& flag) {
    if (auto b = f.get_bool_opt(key_of(suffix))) flag = *b;
}

}  // namespace

vocab vocab_from_gguf(const gguf::file& f) {
    vocab v;
    v.model = f.get_string("tokenizer.ggml.model");
    v.pre = f.get_string_opt("tokenizer.ggml.pre").value_or("");
    v.name = f.get_string_opt("general.name").value_or("");
    v.arch = f.get_string_opt("general.architecture").value_or("");
    if (v.model == "llama")
        v.type = vocab_type::spm;
    else if (v.model == "gpt2")
        v.type = vocab_type::bpe;
    else if (v.model == "bert")
        v.type = vocab_type::wpm;
    else
        throw error("unsupported tokenizer model '" + v.model +
                    "' (tokenizer.ggml.model; supported: llama, gpt2, bert)");

    const auto& toks = f.get_array("tokenizer.ggml.tokens");
    if (toks.elem_type != gguf::value_type::string)
        throw error("metadata key 'tokenizer.ggml.tokens' is not an array of strings");
    if (toks.items.empty()) throw error("metadata key 'tokenizer.ggml.tokens' is empty");
    if (toks.items.size() > static_cast<size_t>(INT32_MAX))
        throw error("metadata key 'tokenizer.ggml.tokens' has too many entries");
    const size_t n = toks.items.size();
    v.tokens.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        std::string t = toks.items[i].as_string();
        // llama.cpp renames empty tokens so that every token has a distinct, findable text.
        if (t.empty()) t = "[EMPTY_" + std::to_string(i) + "]";
        v.tokens.push_back(std::move(t));
    }

    v.scores.assign(n, 0.0f);
    if (f.has("tokenizer.ggml.scores")) {
        const auto& sc = f.get_array("tokenizer.ggml.scores");
        if (sc.items.size() != n)
            throw error("metadata key 'tokenizer.ggml.scores' has " + std::to_string(sc.items.size()) +
                        " entries, expected " + std::to_string(n));
        for (size_t i = 0; i < n; ++i) v.scores[i] = static_cast<float>(sc.items[i].as_f64());
    }

    v.types.assign(n, token_type::normal);
    if (f.has("tokenizer.ggml.token_type")) {
        const auto& ty = f.get_array("tokenizer.ggml.token_type");
        if (ty.items.size() != n)
            throw error("metadata key 'tokenizer.ggml.token_type' has " + std::to_string(ty.items.size()) +
                        " entries, expected " + std::to_string(n));
        for (size_t i = 0; i < n; ++i) {
            const int64_t t = ty.items[i].as_i64();
            v.types[i] = (t >= 0 && t <= 6) ? static_cast<token_type>(t) : token_type::undefined;
        }
    }

    if (v.type == vocab_type::bpe) {
        if (!f.has("tokenizer.ggml.merges"))
            throw error("metadata key 'tokenizer.ggml.merges' is missing (required for a gpt2 tokenizer)");
        const auto& mg = f.get_array("tokenizer.ggml.merges");
        v.merges.reserve(mg.items.size());
        for (const auto& m : mg.items) v.merges.push_back(m.as_string());
    }

    apply_family_defaults(v);

    const int32_t n_vocab = v.n_vocab();
    read_id(f, "bos_token_id", n_vocab, v.bos);
    read_id(f, "eos_token_id", n_vocab, v.eos);
    read_id(f, "eot_token_id", n_vocab, v.eot);
    read_id(f, "eom_token_id", n_vocab, v.eom);
    read_id(f, "unknown_token_id", n_vocab, v.unk);
    read_id(f, "seperator_token_id", n_vocab, v.sep);  // sic: the key is spelled so in GGUF
    read_id(f, "padding_token_id", n_vocab, v.pad);
    read_id(f, "mask_token_id", n_vocab, v.mask);
    if (v.type == vocab_type::wpm) read_id(f, "cls_token_id", n_vocab, v.bos);

    read_flag(f, "add_bos_token", v.add_bos);
    read_flag(f, "add_eos_token", v.add_eos);
    read_flag(f, "add_sep_token", v.add_sep);
    read_flag(f, "add_space_prefix", v.add_space_prefix);
    read_flag(f, "remove_extra_whitespaces", v.remove_extra_whitespaces);
    return v;
}

}  // namespace edgellm
