// Tool calls per template family: detection, prompt preparation, the forcing grammar and the
// reply parser (formats as llama.cpp's chat.cpp handles them).
#include "chat/tool_calls.h"

#include <fmt/format.h>

#include <random>

#include "sampling/json_schema.h"

namespace edgellm::chat {

using json = nlohmann::ordered_json;

namespace {

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r\n") + 1 - b);
}

// The end (one past) of the JSON value starting at s[pos] ('{' or '['), matching brackets outside
// strings; npos when it does not close.
size_t json_value_end(const std::string& s, size_t pos) {
    int depth = 0;
    bool in_str = false;
    for (size_t i = pos; i < s.size(); ++i) {
        const char c = s[i];
        if (in_str) {
            if (c == '\\') ++i;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') ++depth;
        else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return std::string::npos;
}

// The JSON value at s[pos] after optional whitespace; sets `end`. Null json when none parses.
json json_at(const std::string& s, size_t pos, size_t& end) {
    while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos;
    if (pos >= s.size() || (s[pos] != '{' && s[pos] != '[')) return nullptr;
    const size_t e = json_value_end(s, pos);
    if (e == std::string::npos) return nullptr;
    json v = json::parse(s.begin() + static_cast<std::ptrdiff_t>(pos), s.begin() + static_cast<std::ptrdiff_t>(e),
                         nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) return nullptr;
    end = e;
    return v;
}

// Arguments as an object: an object stays, a string holding an object is parsed.
bool arguments_object(const json& v, json& out) {
    if (v.is_object()) {
        out = v;
        return true;
    }
    if (v.is_string()) {
        json p = json::parse(v.get<std::string>(), nullptr, false);
        if (p.is_object()) {
            out = std::move(p);
            return true;
        }
    }
    return false;
}

// {"name": ..., <args_key>: {...}} -> a call.
bool call_from_object(const json& o, const char* name_key, const char* args_key, tool_call& out) {
    if (!o.is_object()) return false;
    auto n = o.find(name_key);
    if (n == o.end() || !n->is_string()) return false;
    json args = json::object();
    if (auto a = o.find(args_key); a != o.end() && !arguments_object(*a, args)) return false;
    out.name = n->get<std::string>();
    out.arguments = std::move(args);
    if (auto id = o.find("id"); id != o.end() && id->is_string()) out.id = id->get<std::string>();
    return true;
}

// A GBNF string literal of `s`.
std::string lit(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out + "\"";
}

const json& params_of(const json& tool) { return tool.at("function").at("parameters"); }
std::string name_of(const json& tool) { return tool.at("function").at("name").get<std::string>(); }

// The tools a forced or free call may use.
std::vector<json> allowed(const json& tools, const tool_choice& c) {
    std::vector<json> out;
    for (const auto& t : tools)
        if (c.k != tool_choice::kind::named || name_of(t) == c.name) out.push_back(t);
    return out;
}

// A JSON object schema {name_key: const NAME, args_key: parameters} per tool, wrapped by `outer`
// (e.g. generic's {"tool_call": ...}).
json call_schema(const json& tool, const char* name_key, const char* args_key) {
    return {{"type", "object"},
            {"properties", {{name_key, {{"const", name_of(tool)}}}, {args_key, params_of(tool)}}},
            {"required", json::array({name_key, args_key})}};
}

sampling::json_schema_rules rules_for(const std::vector<json>& schemas) {
    try {
        return sampling::json_schemas_to_gbnf_rules(schemas, "call");
    } catch (const sampling::json_schema_error& e) {
        throw tool_error(fmt::format("a tool's parameters cannot be turned into a grammar: {}", e.what()));
    }
}

std::string alternatives(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : " | ") + n;
    return "(" + out + ")";
}

std::string generic_system_text(const json& tools, const tool_choice& c) {
    json list = json::array();
    for (const auto& t : allowed(tools, c)) list.push_back(t["function"]);
    std::string s = "You can call any of the following tools to satisfy the user's requests: " + list.dump() + "\n\n";
    if (c.k == tool_choice::kind::automatic)
        s += "Respond in JSON format, either with \"tool_call\" (a request to call a tool) or with \"response\" "
             "(a reply to the user's request):\n{\"tool_call\": {\"name\": \"<tool name>\", \"arguments\": {<its "
             "arguments>}}}\nor\n{\"response\": \"<your reply>\"}";
    else
        s += "Respond in JSON format with \"tool_call\" (a request to call a tool):\n{\"tool_call\": {\"name\": "
             "\"<tool name>\", \"arguments\": {<its arguments>}}}";
    return s;
}

}  // namespace

const char* tool_format_name(tool_format f) {
    switch (f) {
        case tool_format::generic: return "generic";
        case tool_format::hermes: return "hermes";
        case tool_format::llama3: return "llama3";
        case tool_format::mistral: return "mistral";
        case tool_format::functionary: return "functionary";
        case tool_format::deepseek: return "deepseek";
        case tool_format::command_r: return "command_r";
    }
    return "generic";
}

tool_format detect_tool_format(const std::string& src) {
    if (contains(src, "<tool_call>")) return tool_format::hermes;
    if (contains(src, "[TOOL_CALLS]")) return tool_format::mistral;
    if (contains(src, "<function=")) return tool_format::functionary;
    if (contains(src, "<｜tool▁calls▁begin｜>")) return tool_format::deepseek;
    if (contains(src, "<|START_OF_TURN_TOKEN|>") && contains(src, "Action:")) return tool_format::command_r;
    if (contains(src, "<|start_header_id|>") && (contains(src, "<|python_tag|>") || contains(src, "ipython")))
        return tool_format::llama3;
    return tool_format::generic;
}

json normalize_tools(const json& tools) {
    if (!tools.is_array()) throw tool_error("'tools' must be an array of {type: \"function\", function: {...}}");
    json out = json::array();
    std::vector<std::string> names;
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& t = tools[i];
        const std::string at = fmt::format("tools[{}]", i);
        if (!t.is_object()) throw tool_error(at + " must be an object");
        if (t.value("type", std::string("function")) != "function")
            throw tool_error(at + ".type must be \"function\"");
        auto f = t.find("function");
        if (f == t.end() || !f->is_object()) throw tool_error(at + ".function must be an object with a 'name'");
        auto n = f->find("name");
        if (n == f->end() || !n->is_string() || n->get<std::string>().empty())
            throw tool_error(at + ".function.name must be a non-empty string");
        const std::string name = n->get<std::string>();
        if (std::find(names.begin(), names.end(), name) != names.end())
            throw tool_error(fmt::format("{}: the tool name '{}' is used twice", at, name));
        names.push_back(name);
        json fn = *f;
        if (auto d = fn.find("description"); d != fn.end() && !d->is_string() && !d->is_null())
            throw tool_error(at + ".function.description must be a string");
        auto p = fn.find("parameters");
        if (p == fn.end() || p->is_null()) fn["parameters"] = {{"type", "object"}, {"properties", json::object()}};
        else if (!p->is_object()) throw tool_error(at + ".function.parameters must be a JSON schema object");
        out.push_back({{"type", "function"}, {"function", std::move(fn)}});
    }
    return out;
}

tool_choice parse_tool_choice(const json& v, const json& tools) {
    tool_choice c;
    if (v.is_null()) return c;
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "auto") return c;
        if (s == "none") c.k = tool_choice::kind::none;
        else if (s == "required") c.k = tool_choice::kind::required;
        else throw tool_error(fmt::format("'tool_choice' must be \"auto\", \"none\", \"required\" or {{\"type\": "
                                          "\"function\", \"function\": {{\"name\": ...}}}}, got \"{}\"", s));
    } else if (v.is_object()) {
        auto f = v.find("function");
        if (f == v.end() || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
            throw tool_error("'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
        c.k = tool_choice::kind::named;
        c.name = (*f)["name"].get<std::string>();
        bool found = false;
        for (const auto& t : tools) found = found || name_of(t) == c.name;
        if (!found) throw tool_error(fmt::format("'tool_choice' names the function '{}', which is not in 'tools'", c.name));
    } else {
        throw tool_error("'tool_choice' must be a string or an object");
    }
    if (c.k != tool_choice::kind::none && tools.empty())
        throw tool_error("'tool_choice' asks for a tool call but 'tools' is empty");
    return c;
}

bool template_reads_tools(const std::string& src) {
    for (size_t at = src.find("tools"); at != std::string::npos; at = src.find("tools", at + 5)) {
        const bool word_start = at == 0 || !(std::isalnum(static_cast<unsigned char>(src[at - 1])) || src[at - 1] == '_');
        const size_t e = at + 5;
        const bool word_end = e >= src.size() || !(std::isalnum(static_cast<unsigned char>(src[e])) || src[e] == '_');
        if (word_start && word_end) return true;
    }
    return false;
}

namespace {
// How a call looks in a native format, for templates that do not describe it themselves.
std::string call_example(tool_format f) {
    switch (f) {
        case tool_format::hermes: return "<tool_call>\n{\"name\": \"<tool name>\", \"arguments\": {<its arguments>}}\n</tool_call>";
        case tool_format::llama3: return "{\"name\": \"<tool name>\", \"parameters\": {<its arguments>}}";
        case tool_format::mistral: return "[TOOL_CALLS] [{\"name\": \"<tool name>\", \"arguments\": {<its arguments>}}]";
        case tool_format::functionary: return "<function=<tool name>>{<its arguments>}</function>";
        case tool_format::deepseek:
            return "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜><tool name>\n```json\n{<its "
                   "arguments>}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
        case tool_format::command_r: return "Action:\n```json\n[{\"tool_name\": \"<tool name>\", \"parameters\": {<its arguments>}}]\n```";
        case tool_format::generic: break;
    }
    return {};
}
}  // namespace

tool_prompt prepare_tool_prompt(tool_format f, std::vector<chat_message> messages, const json& tools,
                                const tool_choice& choice, bool template_renders_tools) {
    tool_prompt out;
    const bool use_tools = choice.k != tool_choice::kind::none && !tools.empty();
    // Templates that concatenate the arguments as text want strings; the others objects.
    const bool string_args = f == tool_format::functionary || f == tool_format::deepseek;
    std::map<std::string, std::string> call_names;  // id -> function name, for generic tool results
    for (auto& m : messages) {
        auto tc = m.extra.find("tool_calls");
        if (tc == m.extra.end() || !tc->is_array()) continue;
        json calls = json::array();
        for (const auto& c : *tc) {
            json fn = c.contains("function") ? c["function"] : c;
            json args = fn.contains("arguments") ? fn["arguments"] : json::object();
            json obj;
            if (string_args) {
                if (!args.is_string()) args = args.dump();
            } else if (arguments_object(args, obj)) {
                args = std::move(obj);
            }
            fn["arguments"] = args;
            json call = {{"type", "function"}, {"function", fn}};
            if (c.contains("id")) call["id"] = c["id"];
            if (call.contains("id") && call["id"].is_string() && fn.contains("name") && fn["name"].is_string())
                call_names[call["id"].get<std::string>()] = fn["name"].get<std::string>();
            calls.push_back(std::move(call));
        }
        *tc = std::move(calls);
    }
    if (f != tool_format::generic) {
        if (use_tools && !template_renders_tools) {
            json list = json::array();
            for (const auto& t : allowed(tools, choice)) list.push_back(t["function"]);
            const std::string sys = "You can call the following tools: " + list.dump() +
                                    "\n\nTo call a tool, reply with:\n" + call_example(f);
            if (!messages.empty() && messages[0].role == "system")
                messages[0].content += "\n\n" + sys;
            else
                messages.insert(messages.begin(), chat_message{"system", sys, json::object()});
        }
        out.messages = std::move(messages);
        if (use_tools) out.extra_context["tools"] = tools;
        return out;
    }
    // Generic: the template knows no tools; calls and results become JSON text.
    for (auto& m : messages) {
        if (auto tc = m.extra.find("tool_calls"); tc != m.extra.end() && tc->is_array() && !tc->empty()) {
            const json& fn = (*tc)[0]["function"];
            json call = {{"name", fn.value("name", "")}, {"arguments", fn.value("arguments", json::object())}};
            if (tc->size() > 1) {
                json all = json::array();
                for (const auto& c : *tc)
                    all.push_back({{"name", c["function"].value("name", "")},
                                   {"arguments", c["function"].value("arguments", json::object())}});
                m.content = json{{"tool_calls", all}}.dump(2);
            } else {
                m.content = json{{"tool_call", call}}.dump(2);
            }
            m.extra.erase("tool_calls");
            m.extra.erase("content");
        } else if (m.role == "tool") {
            std::string name = m.extra.value("name", std::string());
            if (auto id = m.extra.find("tool_call_id"); name.empty() && id != m.extra.end() && id->is_string())
                if (auto it = call_names.find(id->get<std::string>()); it != call_names.end()) name = it->second;
            m.role = "user";
            m.content = json{{"tool_response", {{"tool", name}, {"content", m.content}}}}.dump(2);
            m.extra = json::object();
        }
    }
    if (use_tools) {
        const std::string sys = generic_system_text(tools, choice);
        if (!messages.empty() && messages[0].role == "system")
            messages[0].content += "\n\n" + sys;
        else
            messages.insert(messages.begin(), chat_message{"system", sys, json::object()});
    }
    out.messages = std::move(messages);
    return out;
}

std::string tool_call_grammar(tool_format f, const json& tools, const tool_choice& choice) {
    using k = tool_choice::kind;
    if (choice.k == k::none || tools.empty()) return {};
    const bool forced = choice.k == k::required || choice.k == k::named;
    if (!forced && f != tool_format::generic) return {};
    const std::vector<json> ts = allowed(tools, choice);
    std::vector<json> schemas;
    auto wrapped = [&](const char* name_key, const char* args_key, const std::string& open, const std::string& close) {
        for (const auto& t : ts) schemas.push_back(call_schema(t, name_key, args_key));
        auto r = rules_for(schemas);
        return "root ::= " + open + alternatives(r.names) + close + "\n" + r.gbnf;
    };
    switch (f) {
        case tool_format::generic: {
            for (const auto& t : ts)
                schemas.push_back({{"type", "object"},
                                   {"properties", {{"tool_call", call_schema(t, "name", "arguments")}}},
                                   {"required", json::array({"tool_call"})}});
            if (!forced)
                schemas.push_back({{"type", "object"},
                                   {"properties", {{"response", {{"type", "string"}}}}},
                                   {"required", json::array({"response"})}});
            auto r = rules_for(schemas);
            return "root ::= " + alternatives(r.names) + "\n" + r.gbnf;
        }
        // One call object ({name_key: NAME, args_key: {...}}) per allowed tool, as alternatives
        // between the format's opening and closing text (GBNF literals; empty: none).
        case tool_format::hermes: return wrapped("name", "arguments", "\"<tool_call>\\n\" ", " \"\\n</tool_call>\"");
        case tool_format::llama3: return wrapped("name", "parameters", "", "");
        case tool_format::mistral: return wrapped("name", "arguments", "\"[TOOL_CALLS] [\" ", " \"]\"");
        case tool_format::command_r:
            return wrapped("tool_name", "parameters", "\"Action:\\n```json\\n[\" ", " \"]\\n```\"");
        case tool_format::functionary:
        case tool_format::deepseek: {
            for (const auto& t : ts) schemas.push_back(params_of(t));
            auto r = rules_for(schemas);
            std::string root;
            for (size_t i = 0; i < ts.size(); ++i) {
                const std::string name = name_of(ts[i]);
                const std::string alt =
                    f == tool_format::functionary
                        ? lit("<function=" + name + ">") + " " + r.names[i] + " " + lit("</function>")
                        : lit("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n") +
                              " " + r.names[i] + " " + lit("\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
                root += (root.empty() ? "" : " | ") + alt;
            }
            return "root ::= " + root + "\n" + r.gbnf;
        }
    }
    return {};
}

parsed_reply parse_tool_reply(tool_format f, const std::string& text) {
    parsed_reply out;
    switch (f) {
        case tool_format::generic: {
            size_t end = 0;
            json v = json_at(text, 0, end);
            if (!v.is_object() || !trim(text.substr(end)).empty()) break;
            tool_call c;
            if (auto tc = v.find("tool_call"); tc != v.end() && call_from_object(*tc, "name", "arguments", c)) {
                out.calls.push_back(std::move(c));
                return out;
            }
            if (auto tcs = v.find("tool_calls"); tcs != v.end() && tcs->is_array()) {
                for (const auto& x : *tcs)
                    if (call_from_object(x, "name", "arguments", c)) out.calls.push_back(c);
                if (!out.calls.empty()) return out;
            }
            if (auto r = v.find("response"); r != v.end() && v.size() == 1) {
                out.content = r->is_string() ? r->get<std::string>() : r->dump();
                return out;
            }
            break;
        }
        case tool_format::hermes: {
            std::string content;
            size_t pos = 0;
            while (true) {
                const size_t open = text.find("<tool_call>", pos);
                if (open == std::string::npos) break;
                size_t end = 0;
                json v = json_at(text, open + 11, end);
                tool_call c;
                if (!call_from_object(v, "name", "arguments", c)) break;
                content += text.substr(pos, open - pos);
                out.calls.push_back(std::move(c));
                size_t close = text.find("</tool_call>", end);
                pos = close == std::string::npos || !trim(text.substr(end, close - end)).empty() ? end : close + 12;
            }
            out.content = trim(content + text.substr(pos));
            return out;
        }
        case tool_format::llama3: {
            std::string t = trim(text);
            size_t start = 0;
            if (t.rfind("<|python_tag|>", 0) == 0) start = 14;
            size_t end = 0;
            json v = json_at(t, start, end);
            tool_call c;
            const char* args_key = v.is_object() && v.contains("arguments") ? "arguments" : "parameters";
            if (v.is_object() && v.contains(args_key) && call_from_object(v, "name", args_key, c)) {
                out.calls.push_back(std::move(c));
                out.content = trim(t.substr(end));
                // Several calls separated by ';' (Llama 3.2 with parallel calls).
                while (!out.content.empty() && out.content[0] == ';') {
                    json w = json_at(out.content, 1, end);
                    tool_call d;
                    const char* k2 = w.is_object() && w.contains("arguments") ? "arguments" : "parameters";
                    if (!w.is_object() || !w.contains(k2) || !call_from_object(w, "name", k2, d)) break;
                    out.calls.push_back(std::move(d));
                    out.content = trim(out.content.substr(end));
                }
                return out;
            }
            break;
        }
        case tool_format::mistral: {
            const size_t at = text.find("[TOOL_CALLS]");
            if (at == std::string::npos) break;
            size_t end = 0;
            json v = json_at(text, at + 12, end);
            if (!v.is_array()) break;
            for (const auto& x : v) {
                tool_call c;
                if (call_from_object(x, "name", "arguments", c)) out.calls.push_back(std::move(c));
            }
            if (out.calls.empty()) break;
            out.content = trim(text.substr(0, at) + text.substr(end));
            return out;
        }
        case tool_format::functionary: {
            std::string content;
            size_t pos = 0;
            while (true) {
                const size_t open = text.find("<function=", pos);
                if (open == std::string::npos) break;
                const size_t gt = text.find('>', open);
                if (gt == std::string::npos) break;
                size_t end = 0;
                json v = json_at(text, gt + 1, end);
                if (!v.is_object()) break;
                content += text.substr(pos, open - pos);
                out.calls.push_back({"", text.substr(open + 10, gt - open - 10), std::move(v)});
                const size_t close = text.find("</function>", end);
                pos = close == std::string::npos || !trim(text.substr(end, close - end)).empty() ? end : close + 11;
            }
            out.content = trim(content + text.substr(pos));
            return out;
        }
        case tool_format::deepseek: {
            static const std::string begin = "<｜tool▁call▁begin｜>", sep = "<｜tool▁sep｜>", fence = "```json";
            const size_t first = text.find("<｜tool▁calls▁begin｜>");
            size_t pos = first == std::string::npos ? text.find(begin) : first;
            if (pos == std::string::npos) break;
            const std::string before = text.substr(0, pos);
            while (true) {
                const size_t b = text.find(begin, pos);
                if (b == std::string::npos) break;
                const size_t s = text.find(sep, b);
                if (s == std::string::npos) break;
                const size_t nl = text.find('\n', s);
                const size_t fb = text.find(fence, s);
                if (nl == std::string::npos || fb == std::string::npos) break;
                size_t end = 0;
                json v = json_at(text, fb + fence.size(), end);
                if (!v.is_object()) break;
                out.calls.push_back({"", trim(text.substr(s + sep.size(), nl - s - sep.size())), std::move(v)});
                pos = end;
            }
            if (out.calls.empty()) break;
            out.content = trim(before);
            return out;
        }
        case tool_format::command_r: {
            const size_t at = text.find("Action:");
            if (at == std::string::npos) break;
            size_t fb = text.find("```json", at);
            size_t end = 0;
            json v = json_at(text, fb == std::string::npos ? at + 7 : fb + 7, end);
            if (!v.is_array()) break;
            for (const auto& x : v) {
                tool_call c;
                if (call_from_object(x, "tool_name", "parameters", c) && c.name != "directly-answer")
                    out.calls.push_back(std::move(c));
            }
            if (out.calls.empty()) break;
            out.content = trim(text.substr(0, at));
            return out;
        }
    }
    out.calls.clear();
    out.content = text;
    return out;
}

std::string new_tool_call_id(tool_format f) {
    static const char k_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    thread_local std::mt19937_64 gen{std::random_device{}()};
    std::uniform_int_distribution<int> d(0, 61);
    std::string id = f == tool_format::mistral ? "" : "call_";
    const int n = f == tool_format::mistral ? 9 : 24;
    for (int i = 0; i < n; ++i) id += k_chars[d(gen)];
    return id;
}

}  // namespace edgellm::chat
