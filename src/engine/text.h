// Text <-> token ids for the generation loop: prompt encoding (BOS handling) and streaming
// decoding of generated tokens, on top of the GGUF's tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_template.h"
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
    // Starts a stream that continues `context` (the prompt): a continuation keeps its leading
    // space ("Once upon a" -> " time"), as llama-server and Ollama print it.
    void prime(std::span<const int32_t> context);

private:
    int32_t bos_ = -1;
    std::shared_ptr<const loaded_model> lm_;
    const tokenizer* tok_ = nullptr;
    std::unique_ptr<incremental_decoder> dec_;
    std::string tokenizer_error_;
};

// Holds generated text back while it could still be the start of a stop string, and ends the
// stream at the first stop string (which is not emitted), as the OpenAI and Ollama APIs do.
class stop_filter {
public:
    explicit stop_filter(std::vector<std::string> stops);
    // Appends text; returns what can be emitted now.
    std::string push(std::string_view text);
    // What is still held back at the end of the stream ("" after a stop string).
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    size_t keep_ = 0;  // longest stop string - 1
    std::string held_;
    bool stopped_ = false;
};

// The chat template of a loaded model: its own tokenizer.chat_template, else a built-in fallback
// chosen from its vocabulary and architecture; `override_name_or_source` (a built-in name or a
// Jinja2 source) wins when given. Needs the model's tokenizer (usage_error without one).
chat::chat_template model_chat_template(const loaded_model& m,
                                        const std::optional<std::string>& override_name_or_source = std::nullopt);

// Renders `messages` with the template (generation prompt added) and encodes them: special-token
// text parsed, BOS added unless the template already wrote it.
// `extra_context` adds template variables (e.g. {"tools": [...]}).
std::vector<int32_t> encode_chat(const loaded_model& m, const chat::chat_template& tmpl,
                                 const std::vector<chat::chat_message>& messages,
                                 const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object());

}  // namespace edgellm::engine
