// Chat templates: rendering with the Jinja2 interpreter, the built-in fallbacks (written as
// Jinja2 so they share one code path and one oracle), and the fallback choice.
#include "chat/chat_template.h"

#include <map>

#include "chat/jinja.h"
#include "core/error.h"

namespace edgellm::chat {

namespace {

// The formats follow each model family's published template (and llama.cpp's built-ins).
const std::map<std::string, std::string>& builtins() {
    static const std::map<std::string, std::string> table = {
        {"chatml", R"JINJA({%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' + (message['content'] or '') + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
)JINJA"},
        {"llama2", R"JINJA({%- if messages and messages[0]['role'] == 'system' -%}
{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}
{%- else -%}{%- set system = none -%}{%- set rest = messages -%}{%- endif -%}
{%- for message in rest -%}
{%- if message['role'] == 'user' -%}
{%- if loop.first and system is not none -%}
{%- set content = '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + message['content'] -%}
{%- else -%}{%- set content = message['content'] -%}{%- endif -%}
{{- bos_token + '[INST] ' + content | trim + ' [/INST]' -}}
{%- elif message['role'] == 'assistant' -%}
{{- ' ' + (message['content'] or '') | trim + ' ' + eos_token -}}
{%- endif -%}
{%- endfor -%}
)JINJA"},
        {"llama3", R"JINJA({%- for message in messages -%}
{%- set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (message['content'] or '') | trim + '<|eot_id|>' -%}
{%- if loop.first -%}{%- set content = bos_token + content -%}{%- endif -%}
{{- content -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%}
)JINJA"},
        {"mistral", R"JINJA({%- if messages and messages[0]['role'] == 'system' -%}
{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}
{%- else -%}{%- set system = '' -%}{%- set rest = messages -%}{%- endif -%}
{{- bos_token -}}
{%- for message in rest -%}
{%- if message['role'] == 'user' -%}
{%- if loop.first and system -%}{{- '[INST] ' + system + '\n\n' + message['content'] + ' [/INST]' -}}
{%- else -%}{{- '[INST] ' + message['content'] + ' [/INST]' -}}{%- endif -%}
{%- elif message['role'] == 'assistant' -%}{{- (message['content'] or '') + eos_token -}}
{%- endif -%}
{%- endfor -%}
)JINJA"},
        {"phi3", R"JINJA({%- for message in messages -%}
{{- '<|' + message['role'] + '|>\n' + (message['content'] or '') + '<|end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}
)JINJA"},
        {"gemma", R"JINJA({{- bos_token -}}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set first_prefix = messages[0]['content'] + '\n\n' -%}{%- set rest = messages[1:] -%}
{%- else -%}{%- set first_prefix = '' -%}{%- set rest = messages -%}{%- endif -%}
{%- for message in rest -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{{- '<start_of_turn>' + role + '\n' + (first_prefix if loop.first else '') + (message['content'] or '') | trim + '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
)JINJA"},
        {"zephyr", R"JINJA({%- for message in messages -%}
{{- '<|' + message['role'] + '|>\n' + (message['content'] or '') + eos_token + '\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- endif -%}
)JINJA"},
        {"deepseek", R"JINJA({{- bos_token -}}
{%- for message in messages -%}
{%- if message['role'] == 'user' -%}{{- 'User: ' + message['content'] + '\n\n' -}}
{%- elif message['role'] == 'assistant' -%}{{- 'Assistant: ' + (message['content'] or '') + eos_token -}}
{%- elif message['role'] == 'system' -%}{{- message['content'] + '\n\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}
)JINJA"},
        {"deepseek3", R"JINJA({{- bos_token -}}
{%- for message in messages if message['role'] == 'system' -%}{{- message['content'] -}}{%- endfor -%}
{%- for message in messages -%}
{%- if message['role'] == 'user' -%}{{- '<｜User｜>' + message['content'] -}}
{%- elif message['role'] == 'assistant' -%}{{- '<｜Assistant｜>' + (message['content'] or '') + '<｜end▁of▁sentence｜>' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<｜Assistant｜>' -}}{%- endif -%}
)JINJA"},
    };
    return table;
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

}  // namespace

chat_template::chat_template(std::string name, std::string source, std::string bos_token, std::string eos_token,
                             std::string reason)
    : name_(std::move(name)),
      source_(std::move(source)),
      bos_(std::move(bos_token)),
      eos_(std::move(eos_token)),
      reason_(std::move(reason)),
      program_(std::make_unique<jinja::template_program>(source_)) {}

chat_template::~chat_template() = default;
chat_template::chat_template(chat_template&&) noexcept = default;
chat_template& chat_template::operator=(chat_template&&) noexcept = default;

std::string render_chat(const chat_template& tmpl, const std::vector<chat_message>& messages,
                        bool add_generation_prompt, const nlohmann::ordered_json& extra_context) {
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    auto msgs = nlohmann::ordered_json::array();
    for (const auto& m : messages) {
        nlohmann::ordered_json j = {{"role", m.role}, {"content", m.content}};
        if (m.extra.is_object())
            for (auto it = m.extra.begin(); it != m.extra.end(); ++it) j[it.key()] = it.value();
        msgs.push_back(std::move(j));
    }
    ctx["messages"] = std::move(msgs);
    ctx["add_generation_prompt"] = add_generation_prompt;
    ctx["bos_token"] = tmpl.bos_token();
    ctx["eos_token"] = tmpl.eos_token();
    if (extra_context.is_object())
        for (auto it = extra_context.begin(); it != extra_context.end(); ++it) ctx[it.key()] = it.value();
    return tmpl.program().render(jinja::value::from_json(ctx));
}

const std::vector<std::string>& builtin_template_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const auto& kv : builtins()) n.push_back(kv.first);
        return n;
    }();
    return names;
}

const std::string& builtin_template_source(const std::string& name) {
    auto it = builtins().find(name);
    if (it == builtins().end()) {
        std::string known;
        for (const auto& n : builtin_template_names()) known += (known.empty() ? "" : ", ") + n;
        throw usage_error("unknown chat template '" + name + "' (built-ins: " + known + ")");
    }
    return it->second;
}

template_choice choose_template(const model_chat_info& info) {
    if (info.chat_template && !info.chat_template->empty())
        return {"gguf", "the model's own template (tokenizer.chat_template)"};
    auto has = [&](const char* t) { return info.has_token && info.has_token(t); };
    // Special tokens identify the chat format more reliably than the architecture: a llama
    // architecture carries Llama 2, Llama 3, Mistral, Zephyr and DeepSeek fine-tunes alike.
    if (has("<|im_start|>")) return {"chatml", "no template in the model; the vocabulary has <|im_start|>"};
    if (has("<|eot_id|>") || has("<|start_header_id|>"))
        return {"llama3", "no template in the model; the vocabulary has <|start_header_id|>/<|eot_id|>"};
    if (has("<start_of_turn>")) return {"gemma", "no template in the model; the vocabulary has <start_of_turn>"};
    if (has("<｜Assistant｜>")) return {"deepseek3", "no template in the model; the vocabulary has <｜Assistant｜>"};
    if (has("<|end|>") && has("<|assistant|>"))
        return {"phi3", "no template in the model; the vocabulary has <|end|> and <|assistant|>"};
    if (has("<|assistant|>")) return {"zephyr", "no template in the model; the vocabulary has <|assistant|>"};
    if (has("[INST]")) return {"mistral", "no template in the model; the vocabulary has [INST]"};
    const std::string& arch = info.architecture;
    auto by_arch = [&](const char* name) {
        return template_choice{name, "no template in the model and no telling special tokens; architecture '" + arch + "'"};
    };
    if (starts_with(arch, "gemma")) return by_arch("gemma");
    if (starts_with(arch, "phi3")) return by_arch("phi3");
    if (starts_with(arch, "qwen")) return by_arch("chatml");
    if (starts_with(arch, "deepseek")) return by_arch("deepseek");
    if (starts_with(arch, "llama") && has("<｜end▁of▁sentence｜>")) return by_arch("deepseek");
    if (starts_with(arch, "llama")) return by_arch("llama2");
    return {"chatml", "no template in the model and nothing identifies its format; chatml is the common default"};
}

chat_template select_template(const model_chat_info& info, const std::optional<std::string>& override_name_or_source) {
    if (override_name_or_source) {
        const std::string& o = *override_name_or_source;
        if (builtins().count(o))
            return chat_template(o, builtin_template_source(o), info.bos_token, info.eos_token, "chosen by the user");
        if (o.find("{%") == std::string::npos && o.find("{{") == std::string::npos)
            builtin_template_source(o);  // throws: names the built-ins
        return chat_template("custom", o, info.bos_token, info.eos_token, "template given by the user");
    }
    template_choice c = choose_template(info);
    const std::string& source = c.name == "gguf" ? *info.chat_template : builtin_template_source(c.name);
    return chat_template(c.name, source, info.bos_token, info.eos_token, c.reason);
}

}  // namespace edgellm::chat
