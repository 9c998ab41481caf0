// Prompt encoding and streaming detokenization for the engine.
#include "engine/text.h"

#include <fmt/format.h>

#include "core/error.h"

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

void text_codec::reset() {
    if (dec_) dec_->reset();
}

}  // namespace edgellm::engine
