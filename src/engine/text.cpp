// Prompt encoding and streaming detokenization for the engine.
#include "engine/text.h"

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/vocab.h"

namespace edgellm::engine {

text_codec::text_codec(std::shared_ptr<const loaded_model> m)
    : bos_(m->hparams().bos_id), lm_(std::move(m)), tok_(lm_->get_tokenizer()) {
    if (tok_) {
        dec_ = std::make_unique<incremental_decoder>(*tok_);
        if (bos_ < 0) bos_ = tok_->bos();
    } else {
        tokenizer_error_ = lm_->tokenizer_error();
    }
}

std::vector<int32_t> text_codec::encode_prompt(const std::string& text) const {
    if (text.empty()) {
        if (bos_ < 0) throw usage_error("an empty prompt starts from BOS, but this model has no BOS token");
        return {bos_};
    }
    if (!tok_)
        throw usage_error(fmt::format("cannot tokenize the prompt: {} (pass token ids with --prompt-ids)",
                                      tokenizer_error_));
    std::vector<int32_t> ids = tok_->encode(text, /*add_bos=*/true, /*parse_special=*/true);
    if (ids.empty()) throw usage_error("the prompt encodes to no tokens");
    return ids;
}

std::string text_codec::push(int32_t token) {
    if (!dec_) return fmt::format("[{}]", token);
    return dec_->push(token);
}

std::string text_codec::flush() { return dec_ ? dec_->flush() : std::string(); }

void text_codec::prime(std::span<const int32_t> context) {
    if (dec_) dec_->prime(context);
}

stop_filter::stop_filter(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
    for (const auto& s : stops_) keep_ = std::max(keep_, s.size() - 1);
}

std::string stop_filter::push(std::string_view text) {
    if (stopped_) return {};
    held_ += text;
    size_t first = std::string::npos;
    for (const auto& s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
        stopped_ = true;
        std::string out = held_.substr(0, first);
        held_.clear();
        return out;
    }
    if (held_.size() <= keep_) return {};
    std::string out = held_.substr(0, held_.size() - keep_);
    held_.erase(0, held_.size() - keep_);
    return out;
}

std::string stop_filter::flush() {
    std::string out;
    out.swap(held_);
    return stopped_ ? std::string() : out;
}

void text_codec::reset() {
    if (dec_) dec_->reset();
}

chat::chat_template model_chat_template(const loaded_model& m,
                                        const std::optional<std::string>& override_name_or_source) {
    const tokenizer* tok = m.get_tokenizer();
    if (!tok) throw usage_error("chat needs a model with tokenizer metadata: " + m.tokenizer_error());
    const gguf::file& file = m.get_model().file();
    chat::model_chat_info info;
    info.chat_template = file.get_string_opt("tokenizer.chat_template");
    info.architecture = file.get_string_opt("general.architecture").value_or("");
    if (tok->bos() != k_no_token) info.bos_token = tok->token_to_piece(tok->bos(), true);
    if (tok->eos() != k_no_token) info.eos_token = tok->token_to_piece(tok->eos(), true);
    info.has_token = [tok](const std::string& t) { return tok->find_token(t) != k_no_token; };
    return chat::select_template(info, override_name_or_source);
}

std::vector<int32_t> encode_chat(const loaded_model& m, const chat::chat_template& tmpl,
                                 const std::vector<chat::chat_message>& messages,
                                 const nlohmann::ordered_json& extra_context) {
    const tokenizer* tok = m.get_tokenizer();
    if (!tok) throw usage_error("chat needs a model with tokenizer metadata: " + m.tokenizer_error());
    const std::string text = chat::render_chat(tmpl, messages, true, extra_context);
    const bool has_bos_text = !tmpl.bos_token().empty() && text.rfind(tmpl.bos_token(), 0) == 0;
    return tok->encode(text, !has_bos_text, /*parse_special=*/true);
}

}  // namespace edgellm::engine
