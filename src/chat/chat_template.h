// Chat prompt formatting: render a model's Jinja2 chat template (tokenizer.chat_template) or a
// named built-in fallback chosen from the architecture/vocabulary when the model has none.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace edgellm::jinja {
class template_program;
}

namespace edgellm::chat {

struct chat_message {
    std::string role;  // system, user, assistant, tool
    std::string content;
    // Further fields the template may read (tool_calls, name, tool_call_id, ...). A "content"
    // key here replaces `content` (e.g. null content for tool-call-only assistant turns).
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class chat_template {
public:
    // Parses `source` now, so syntax errors surface before the first turn. `name` is "gguf"
    // for a model's own template, or the built-in's name; `reason` says why it was chosen.
    chat_template(std::string name, std::string source, std::string bos_token, std::string eos_token,
                  std::string reason = {});
    ~chat_template();
    chat_template(chat_template&&) noexcept;
    chat_template& operator=(chat_template&&) noexcept;

    const std::string& name() const { return name_; }
    const std::string& source() const { return source_; }
    const std::string& bos_token() const { return bos_; }
    const std::string& eos_token() const { return eos_; }
    const std::string& reason() const { return reason_; }
    const jinja::template_program& program() const { return *program_; }

private:
    std::string name_, source_, bos_, eos_, reason_;
    std::unique_ptr<jinja::template_program> program_;
};

// Renders `messages` as HF transformers' apply_chat_template(tokenize=False) would:
// context = {messages, add_generation_prompt, bos_token, eos_token} plus `extra_context`
// (e.g. {"tools": [...]}, "date_string", "enable_thinking"). Throws jinja::template_error.
std::string render_chat(const chat_template& tmpl, const std::vector<chat_message>& messages,
                        bool add_generation_prompt,
                        const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object());

// Names of the built-in fallback templates, and their Jinja2 sources.
const std::vector<std::string>& builtin_template_names();
// Source of a built-in; throws usage_error naming the known ones for an unknown name.
const std::string& builtin_template_source(const std::string& name);

// What the model file tells us, in plain data (the caller reads the GGUF).
struct model_chat_info {
    std::optional<std::string> chat_template;  // tokenizer.chat_template, if present
    std::string architecture;                  // general.architecture
    std::string bos_token, eos_token;          // text of the BOS/EOS tokens ("" when none)
    std::function<bool(const std::string&)> has_token;  // is this text a token of the vocab?
};

struct template_choice {
    std::string name;    // "gguf" or a built-in name
    std::string reason;  // human-readable: why this one
};

// Picks the model's own template when it has one, otherwise a built-in from special tokens in
// the vocabulary, then from the architecture, else chatml; says which and why.
template_choice choose_template(const model_chat_info& info);

// Builds the chosen template. `override_name_or_source`, when set, is a built-in name or a
// Jinja2 source given by the user and wins over the model's.
chat_template select_template(const model_chat_info& info,
                              const std::optional<std::string>& override_name_or_source = std::nullopt);

}  // namespace edgellm::chat
