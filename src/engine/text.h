// Text <-> token ids for the generation loop: prompt encoding (BOS handling) and streaming
// decoding of generated tokens into printable pieces.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace edgellm::engine {

class text_codec {
public:
    explicit text_codec(const model::model& m);
    // Token ids of a prompt, with BOS first when the model wants one. "" gives [BOS] alone
    // (an error for a model without a BOS token).
    std::vector<int32_t> encode_prompt(const std::string& text) const;
    // The text of one generated token (`first`: first piece of the output, where SPM drops the
    // leading space it encodes).
    std::string piece(int32_t token, bool first) const;

private:
    int32_t bos_ = -1;
    bool add_bos_ = true;
    std::vector<std::string> tokens_;  // tokenizer.ggml.tokens (may be empty)
    bool spm_ = true;
};

}  // namespace edgellm::engine
