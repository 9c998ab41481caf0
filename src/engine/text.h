// Text <-> token ids for the generation loop: prompt encoding (BOS handling) and streaming
// decoding of generated tokens, on top of the GGUF's tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace edgellm::engine {

class text_codec {
public:
    // Uses the loaded model's tokenizer (shared, not rebuilt). A model without usable tokenizer
    // metadata still works with token ids (encode_prompt of non-empty text then fails, pieces
    // print as "[id]"). The codec keeps `m` alive.
    explicit text_codec(std::shared_ptr<const loaded_model> m);
    bool has_tokenizer() const { return tok_ != nullptr; }
    const tokenizer* get_tokenizer() const { return tok_; }

    // Token ids of a prompt, BOS first when the model wants one; special-token text such as
    // "<|im_start|>" is parsed. "" gives [BOS] alone (an error for a model without BOS).
    std::vector<int32_t> encode_prompt(const std::string& text) const;
    // Text completed by generated token `token` (bytes of an unfinished UTF-8 character are
    // held back); flush() returns what is left at the end.
    std::string push(int32_t token);
    std::string flush();
    void reset();

private:
    int32_t bos_ = -1;
    std::shared_ptr<const loaded_model> lm_;
    const tokenizer* tok_ = nullptr;
    std::unique_ptr<incremental_decoder> dec_;
    std::string tokenizer_error_;
};

}  // namespace edgellm::engine
