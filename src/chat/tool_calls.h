// Tool (function) calling through a model's chat template: which call format the template
// speaks, the prompt (the `tools` variable for templates that know tools, a generic system
// message for those that do not, as llama.cpp's generic handler), the grammar that forces a call
// when the request demands one, and parsing the model's reply back into calls.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "core/error.h"

namespace edgellm::chat {

// The call syntax of a template family.
enum class tool_format {
    generic,      // no tool syntax in the template: a JSON reply {"tool_call": {...}} or {"response": "..."}
    hermes,       // Hermes 2 Pro / Hermes 3 / Qwen 2.5: <tool_call>{"name", "arguments"}</tool_call>
    llama3,       // Llama 3.1 / 3.2 / 3.3: {"name", "parameters"}, optionally after <|python_tag|>
    mistral,      // Mistral (v3 tokenizer): [TOOL_CALLS] [{"name", "arguments", "id"}]
    functionary,  // Functionary v3.1: <function=NAME>{arguments}</function>
    deepseek,     // DeepSeek R1: <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
    command_r,    // Command R+: Action:\n```json\n[{"tool_name", "parameters"}]\n```
};
const char* tool_format_name(tool_format f);
// The format a template's source speaks (generic when it shows none of the known syntaxes).
tool_format detect_tool_format(const std::string& template_source);

// A request the tool code refuses (bad tools array, unknown tool_choice): HTTP 400.
class tool_error : public usage_error {
public:
    using usage_error::usage_error;
};

struct tool_choice {
    enum class kind { automatic, none, required, named } k = kind::automatic;
    std::string name;  // with named
};

// OpenAI's `tool_choice`: "auto" | "none" | "required" | {"type": "function", "function": {"name"}}
// (the name must be one of `tools`). Absent/null: auto.
tool_choice parse_tool_choice(const nlohmann::ordered_json& v, const nlohmann::ordered_json& tools);
// Checks `tools` ([{type: "function", function: {name, description?, parameters?}}]) and returns
// them normalised (parameters defaulting to any object). Throws tool_error naming the entry.
nlohmann::ordered_json normalize_tools(const nlohmann::ordered_json& tools);

struct tool_call {
    std::string id;  // from the reply where the format carries one (Mistral), else ""
    std::string name;
    nlohmann::ordered_json arguments = nlohmann::ordered_json::object();  // an object
};

// The prompt side: messages rewritten for the format (tool-call arguments as objects or strings
// as the family's template wants them; for the generic format, tool calls and results as JSON
// text and the tool list in the system message) and the template's extra context ({"tools"}).
struct tool_prompt {
    std::vector<chat_message> messages;
    nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
};
// `template_renders_tools`: whether the template reads the `tools` variable (DeepSeek R1's
// official templates parse calls but never list the tools); when it does not, the tool list and
// the format's call syntax go into the system message instead.
tool_prompt prepare_tool_prompt(tool_format f, std::vector<chat_message> messages,
                                const nlohmann::ordered_json& tools, const tool_choice& choice,
                                bool template_renders_tools = true);
// Whether a template source reads the `tools` variable.
bool template_reads_tools(const std::string& template_source);

// GBNF the reply must follow: with `required` or a named tool, exactly one call in the format's
// syntax whose arguments follow the tool's parameter schema; for the generic format with auto,
// a call or {"response": "..."}. "" when the reply is free (auto with a native format, none).
// Throws tool_error when a tool's parameters use a schema feature the converter refuses.
std::string tool_call_grammar(tool_format f, const nlohmann::ordered_json& tools, const tool_choice& choice);

struct parsed_reply {
    std::string content;  // the text that is not a call
    std::vector<tool_call> calls;
};
// Splits a finished reply into text and calls. A call whose JSON does not parse stays text.
parsed_reply parse_tool_reply(tool_format f, const std::string& text);

// A fresh call id: "call_" + 24 alphanumerics, or 9 alphanumerics for Mistral (its template
// insists on that length).
std::string new_tool_call_id(tool_format f);

}  // namespace edgellm::chat
