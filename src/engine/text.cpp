// Prompt encoding and token-piece decoding for the engine, on top of the GGUF vocabulary.
#include "engine/text.h"

#include <fmt/format.h>

#include "core/error.h"

namespace edgellm::engine {

text_codec::text_codec(const model::model& m) {
    const gguf::file& f = m.file();
    bos_ = m.hparams().bos_id;
    const std::string tok_model = f.get_string_opt("tokenizer.ggml.model").value_or("llama");
    spm_ = tok_model == "llama";
    add_bos_ = f.get_bool_opt("tokenizer.ggml.add_bos_token").value_or(spm_);
    if (const gguf::value* v = f.find("tokenizer.ggml.tokens"); v && v->type == gguf::value_type::array) {
        for (const gguf::value& item : v->as_array().items)
            tokens_.push_back(item.type == gguf::value_type::string ? item.as_string() : std::string());
    }
}

std::vector<int32_t> text_codec::encode_prompt(const std::string& text) const {
    if (text.empty()) {
        if (bos_ < 0) throw usage_error("an empty prompt starts from BOS, but this model has no BOS token");
        return {bos_};
    }
    throw usage_error("text prompts need the tokenizer, which is not built into this edgellm yet; pass token ids "
                      "with --prompt-ids");
}

std::string text_codec::piece(int32_t token, bool first) const {
    if (token < 0 || static_cast<size_t>(token) >= tokens_.size()) return fmt::format("[{}]", token);
    std::string s = tokens_[static_cast<size_t>(token)];
    if (!spm_) return s;
    // SentencePiece: byte tokens "<0xAB>" stand for one raw byte; U+2581 marks a space.
    if (s.size() == 6 && s.rfind("<0x", 0) == 0 && s[5] == '>')
        return std::string(1, static_cast<char>(std::stoi(s.substr(3, 2), nullptr, 16)));
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s.compare(i, 3, "\xe2\x96\x81") == 0) {
            out += ' ';
            i += 2;
        } else {
            out += s[i];
        }
    }
    if (first && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
}

}  // namespace edgellm::engine
