// JSON Schema -> GBNF: one rule per schema node, primitives (string, number, ...) shared,
// objects as llama.cpp's SchemaConverter builds them (required properties in order, then each
// optional one, comma-separated), $ref resolved to named rules so recursion works.
#include "sampling/json_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace edgellm::sampling {
namespace {

using json = nlohmann::ordered_json;

// Between JSON tokens: nothing, one space, or up to two newlines and an indent of at most 20,
// so a model cannot fill its budget with whitespace.
const char* k_space = R"(| " " | "\n"{1,2} [ \t]{0,20})";

struct primitive {
    const char* body;
    std::vector<const char*> deps;
};

const std::map<std::string, primitive>& primitives() {
    static const std::map<std::string, primitive> k = {
        {"space", {k_space, {}}},
        {"boolean", {R"(("true" | "false") space)", {"space"}}},
        {"null", {R"("null" space)", {"space"}}},
        {"integral-part", {R"([0] | [1-9] [0-9]{0,15})", {}}},
        {"decimal-part", {R"([0-9]{1,16})", {}}},
        {"integer", {R"(("-"? integral-part) space)", {"integral-part", "space"}}},
        {"number", {R"(("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space)",
                    {"integral-part", "decimal-part", "space"}}},
        {"char", {R"([^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))", {}}},
        {"string", {R"("\"" char* "\"" space)", {"char", "space"}}},
        {"value", {"object | array | string | number | boolean | null",
                   {"object", "array", "string", "number", "boolean", "null"}}},
        {"object", {R"("{" space ( string ":" space value ("," space string ":" space value)* )? "}" space)",
                    {"string", "value", "space"}}},
        {"array", {R"("[" space ( value ("," space value)* )? "]" space)", {"value", "space"}}},
        {"uuid", {R"("\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space)",
                  {"space"}}},
        {"date", {R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ))", {}}},
        {"time", {R"(([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))",
                  {}}},
        {"date-time", {R"(date "T" time)", {"date", "time"}}},
        {"date-string", {R"("\"" date "\"" space)", {"date", "space"}}},
        {"time-string", {R"("\"" time "\"" space)", {"time", "space"}}},
        {"date-time-string", {R"("\"" date-time "\"" space)", {"date-time", "space"}}},
    };
    return k;
}

// Keywords that constrain values in ways the grammar does not follow: refused, not ignored.
const std::set<std::string>& unsupported() {
    static const std::set<std::string> k = {"pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                            "multipleOf", "allOf", "not", "if", "then", "else", "patternProperties",
                                            "uniqueItems", "minProperties", "maxProperties", "contains",
                                            "dependentRequired", "dependentSchemas", "propertyNames",
                                            "unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains"};
    return k;
}

// A GBNF string literal matching exactly `s`.
std::string literal(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20) out += fmt::format("\\x{:02X}", c);
        else out += static_cast<char>(c);
    }
    return out + "\"";
}

std::string json_literal(const json& v) { return literal(v.dump()) + " space"; }

class converter {
public:
    explicit converter(const json& root) : root_(&root) {}

    std::string run() {
        // The document itself ends without the whitespace every value rule allows after it, so
        // the grammar is complete (and generation ends) right after the closing character.
        const std::string top = visit(*root_, "document", "");
        rules_["root"] = tail(top);
        order_.push_back("root");
        return text();
    }

    // Another document in the same grammar (its own $refs): the name of the rule matching it,
    // without trailing whitespace.
    std::string document(const json& schema, const std::string& name) {
        root_ = &schema;
        refs_.clear();
        return tail(visit(schema, name, ""));
    }

    std::string text() const {
        std::string out;
        for (const auto& name : order_) out += name + " ::= " + rules_.at(name) + "\n";
        return out;
    }

private:
    const json* root_;
    std::map<std::string, std::string> rules_;
    std::vector<std::string> order_;
    std::map<std::string, std::string> refs_;  // "#/$defs/x" -> rule name

    std::map<std::string, std::string> tails_;  // rule -> its variant without trailing whitespace

    // The top-level alternatives of a GBNF body (| outside quotes, classes and parentheses).
    static std::vector<std::string> split_alternatives(const std::string& body) {
        std::vector<std::string> out(1);
        int depth = 0;
        for (size_t i = 0; i < body.size(); ++i) {
            const char c = body[i];
            if (c == '"' || c == '[') {
                const char close = c == '"' ? '"' : ']';
                size_t j = i + 1;
                while (j < body.size() && body[j] != close) j += body[j] == '\\' ? 2 : 1;
                out.back() += body.substr(i, j + 1 - i);
                i = j;
                continue;
            }
            if (c == '(') ++depth;
            if (c == ')') --depth;
            if (c == '|' && depth == 0) {
                out.emplace_back();
                continue;
            }
            out.back() += c;
        }
        for (auto& a : out) {
            a.erase(0, a.find_first_not_of(' '));
            a.erase(a.find_last_not_of(' ') + 1);
        }
        return out;
    }

    // A rule like `name` whose alternatives do not end in `space`.
    std::string tail(const std::string& name) {
        if (auto it = tails_.find(name); it != tails_.end()) return it->second;
        if (name == "space") return name;
        const std::string t = add_rule(name + "-end", "");
        tails_[name] = t;
        std::string body;
        for (std::string alt : split_alternatives(rules_.at(name))) {
            const size_t last_sp = alt.find_last_of(' ');
            const std::string last = last_sp == std::string::npos ? alt : alt.substr(last_sp + 1);
            const std::string head = last_sp == std::string::npos ? "" : alt.substr(0, last_sp);
            if (last == "space") {
                alt = head;
            } else if (!last.empty() && rules_.count(last) &&
                       std::all_of(last.begin(), last.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; })) {
                alt = (head.empty() ? "" : head + " ") + tail(last);
            }
            body += (body.empty() ? "" : " | ") + (alt.empty() ? "\"\"" : alt);
        }
        rules_[t] = body;
        return t;
    }

    [[noreturn]] void fail(const std::string& path, const std::string& what) const {
        throw json_schema_error(fmt::format("JSON schema at {}: {}", path.empty() ? "/" : path, what));
    }

    static std::string sanitize(const std::string& name) {
        std::string out;
        for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
        return out.empty() ? "r" : out;
    }

    std::string add_rule(const std::string& want, const std::string& body) {
        const std::string base = sanitize(want);
        std::string name = base;
        for (int i = 1;; ++i) {
            auto it = rules_.find(name);
            if (it == rules_.end()) break;
            if (it->second == body) return name;
            name = fmt::format("{}{}", base, i);
        }
        rules_[name] = body;
        order_.push_back(name);
        return name;
    }

    std::string add_primitive(const std::string& name) {
        const primitive& p = primitives().at(name);
        if (rules_.count(name)) return name;
        rules_[name] = p.body;
        order_.push_back(name);
        for (const char* d : p.deps) add_primitive(d);
        return name;
    }

    std::string count_range(uint64_t min, std::optional<uint64_t> max, const std::string& path) const {
        if (min > k_grammar_max_repeat || (max && *max > k_grammar_max_repeat))
            fail(path, fmt::format("counts above {} are not supported", k_grammar_max_repeat));
        if (max && *max < min) fail(path, "the maximum is below the minimum");
        if (!max) return fmt::format("{{{},}}", min);
        return fmt::format("{{{},{}}}", min, *max);
    }

    static std::optional<uint64_t> opt_count(const json& s, const char* key, const std::string& path,
                                             const converter& c) {
        auto it = s.find(key);
        if (it == s.end()) return std::nullopt;
        if (!it->is_number_integer() || it->get<int64_t>() < 0)
            c.fail(path + "/" + key, "must be a non-negative integer");
        return it->get<uint64_t>();
    }

    // item (sep item){min-1,max-1}, optional as a whole when min is 0.
    std::string repetition(const std::string& item, uint64_t min, std::optional<uint64_t> max, const std::string& path) {
        if (max && *max == 0) return "";
        const uint64_t rest_min = min > 0 ? min - 1 : 0;
        std::optional<uint64_t> rest_max;
        if (max) rest_max = *max - 1;
        std::string rest = "(\",\" space " + item + ")" + count_range(rest_min, rest_max, path);
        if (rest_max && *rest_max == 0) rest.clear();
        std::string seq = item + (rest.empty() ? "" : " " + rest);
        add_primitive("space");
        return min == 0 ? "( " + seq + " )?" : seq;
    }

    std::string resolve_ref(const std::string& ref, const std::string& path) {
        if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
        if (ref.rfind("#", 0) != 0) fail(path, fmt::format("only local $ref (\"#/$defs/...\") is supported, got '{}'", ref));
        const json* target = root_;
        std::string name = "ref";
        if (ref != "#") {
            try {
                target = &root_->at(json::json_pointer(ref.substr(1)));
            } catch (const std::exception&) {
                fail(path, fmt::format("$ref '{}' points to nothing in the schema", ref));
            }
            name = ref.substr(ref.rfind('/') + 1);
        }
        // Reserve the name first so a recursive reference finds it.
        std::string rule = sanitize(name);
        for (int i = 1; rules_.count(rule); ++i) rule = fmt::format("{}{}", sanitize(name), i);
        rules_[rule] = "";
        order_.push_back(rule);
        refs_[ref] = rule;
        const std::string inner = visit(*target, rule + "-body", ref.substr(1));
        rules_[rule] = inner;
        return rule;
    }

    std::string object_rule(const json& s, const std::string& name, const std::string& path) {
        std::vector<std::pair<std::string, std::string>> kv;  // property -> its "key": value rule
        std::set<std::string> required;
        if (auto r = s.find("required"); r != s.end()) {
            if (!r->is_array()) fail(path + "/required", "must be an array of property names");
            for (const auto& k : *r) {
                if (!k.is_string()) fail(path + "/required", "must hold only strings");
                required.insert(k.get<std::string>());
            }
        }
        if (auto p = s.find("properties"); p != s.end()) {
            if (!p->is_object()) fail(path + "/properties", "must be an object");
            for (const auto& [key, sub] : p->items()) {
                const std::string value = visit(sub, name + "-" + key, path + "/properties/" + key);
                kv.push_back({key, add_rule(name + "-" + key + "-kv",
                                            literal(json(key).dump()) + " space \":\" space " + value)});
            }
        }
        for (const auto& k : required)
            if (std::none_of(kv.begin(), kv.end(), [&](const auto& e) { return e.first == k; }))
                fail(path + "/required", fmt::format("'{}' is required but not in 'properties'", k));
        std::vector<std::string> req, opt;
        for (const auto& [key, rule] : kv) (required.count(key) ? req : opt).push_back(rule);
        bool additional_star = false;
        if (auto a = s.find("additionalProperties"); a != s.end() && !(a->is_boolean() && !a->get<bool>())) {
            const std::string value = (a->is_boolean() || (a->is_object() && a->empty()))
                                          ? add_primitive("value")
                                          : visit(*a, name + "-additional", path + "/additionalProperties");
            add_primitive("string");
            opt.push_back(add_rule(name + "-additional-kv", "string \":\" space " + value));
            additional_star = true;
        }
        add_primitive("space");
        std::string body = "\"{\" space ";
        for (size_t i = 0; i < req.size(); ++i) body += (i ? " \",\" space " : "") + req[i];
        if (!opt.empty()) {
            // Each optional property may appear, in order; the last of them (the additional
            // properties, when allowed) may repeat.
            std::vector<std::string> alts;
            for (size_t i = 0; i < opt.size(); ++i) alts.push_back(optional_chain(opt, i, false, additional_star, name));
            std::string joined;
            for (size_t i = 0; i < alts.size(); ++i) joined += (i ? " | " : "") + alts[i];
            body += req.empty() ? " ( " + joined + " )?" : " ( \",\" space ( " + joined + " ) )?";
        }
        return body + " \"}\" space";
    }

    // opt[i] first (or optional), then the chain of the ones after it, each optional.
    std::string optional_chain(const std::vector<std::string>& opt, size_t i, bool first_optional, bool last_repeats,
                               const std::string& name) {
        const bool repeats = last_repeats && i + 1 == opt.size();
        const std::string comma = "( \",\" space " + opt[i] + " )";
        std::string res = first_optional ? comma + (repeats ? "*" : "?") : opt[i] + (repeats ? " " + comma + "*" : "");
        if (i + 1 < opt.size())
            res += " " + add_rule(fmt::format("{}-opt{}-rest", name, i + 1),
                                  optional_chain(opt, i + 1, true, last_repeats, name));
        return res;
    }

    std::string type_rule(const json& s, const std::string& type, const std::string& name, const std::string& path) {
        if (type == "object") {
            if (!s.contains("properties") && !s.contains("additionalProperties")) return add_primitive("object");
            return add_rule(name, object_rule(s, name, path));
        }
        if (type == "array") {
            const uint64_t min = opt_count(s, "minItems", path, *this).value_or(0);
            const std::optional<uint64_t> max = opt_count(s, "maxItems", path, *this);
            add_primitive("space");
            if (auto pi = s.find("prefixItems"); pi != s.end()) {
                if (!pi->is_array()) fail(path + "/prefixItems", "must be an array of schemas");
                std::string body = "\"[\" space ";
                for (size_t i = 0; i < pi->size(); ++i)
                    body += (i ? " \",\" space " : "") +
                            visit((*pi)[i], fmt::format("{}-{}", name, i), fmt::format("{}/prefixItems/{}", path, i));
                return add_rule(name, body + " \"]\" space");
            }
            std::string item = add_primitive("value");
            if (auto it = s.find("items"); it != s.end()) {
                if (it->is_array()) fail(path + "/items", "an array of schemas here is not supported (use prefixItems)");
                item = visit(*it, name + "-item", path + "/items");
            }
            return add_rule(name, "\"[\" space " + repetition(item, min, max, path) + " \"]\" space");
        }
        if (type == "string") {
            if (auto f = s.find("format"); f != s.end() && f->is_string()) {
                const std::string fmt_name = f->get<std::string>();
                if (fmt_name == "uuid") return add_primitive("uuid");
                if (fmt_name == "date" || fmt_name == "time" || fmt_name == "date-time")
                    return add_primitive(fmt_name + "-string");
            }
            const std::optional<uint64_t> min = opt_count(s, "minLength", path, *this);
            const std::optional<uint64_t> max = opt_count(s, "maxLength", path, *this);
            if (!min && !max) return add_primitive("string");
            add_primitive("char");
            add_primitive("space");
            return add_rule(name, "\"\\\"\" char" + count_range(min.value_or(0), max, path) + " \"\\\"\" space");
        }
        if (type == "number" || type == "integer" || type == "boolean" || type == "null") return add_primitive(type);
        fail(path + "/type", fmt::format("unknown type '{}'", type));
    }

    // The name of a rule matching what `s` accepts.
    std::string visit(const json& s, const std::string& name, const std::string& path) {
        if (s.is_boolean()) {
            if (!s.get<bool>()) fail(path, "the schema 'false' accepts nothing");
            return add_primitive("value");
        }
        if (!s.is_object()) fail(path, fmt::format("a schema must be an object, got {}", s.type_name()));
        for (const auto& [key, v] : s.items())
            if (unsupported().count(key)) fail(path, fmt::format("'{}' is not supported", key));
        if (auto r = s.find("$ref"); r != s.end()) {
            if (!r->is_string()) fail(path + "/$ref", "must be a string");
            return resolve_ref(r->get<std::string>(), path);
        }
        if (auto c = s.find("const"); c != s.end()) {
            add_primitive("space");
            return add_rule(name, json_literal(*c));
        }
        if (auto e = s.find("enum"); e != s.end()) {
            if (!e->is_array() || e->empty()) fail(path + "/enum", "must be a non-empty array");
            add_primitive("space");
            std::string body;
            for (const auto& v : *e) body += (body.empty() ? "" : " | ") + json_literal(v);
            return add_rule(name, body);
        }
        for (const char* key : {"anyOf", "oneOf"}) {
            if (auto a = s.find(key); a != s.end()) {
                if (!a->is_array() || a->empty()) fail(path + "/" + key, "must be a non-empty array of schemas");
                std::string body;
                for (size_t i = 0; i < a->size(); ++i)
                    body += (i ? " | " : "") +
                            visit((*a)[i], fmt::format("{}-{}", name, i), fmt::format("{}/{}/{}", path, key, i));
                return add_rule(name, body);
            }
        }
        auto t = s.find("type");
        if (t == s.end()) {
            if (s.contains("properties") || s.contains("additionalProperties")) return type_rule(s, "object", name, path);
            if (s.contains("items") || s.contains("prefixItems")) return type_rule(s, "array", name, path);
            return add_primitive("value");
        }
        if (t->is_string()) return type_rule(s, t->get<std::string>(), name, path);
        if (t->is_array() && !t->empty()) {
            std::string body;
            for (const auto& one : *t) {
                if (!one.is_string()) fail(path + "/type", "must be a string or an array of strings");
                body += (body.empty() ? "" : " | ") + type_rule(s, one.get<std::string>(), name + "-" + one.get<std::string>(), path);
            }
            return add_rule(name, body);
        }
        fail(path + "/type", "must be a string or a non-empty array of strings");
    }
};

}  // namespace

std::string json_schema_to_gbnf(const json& schema) {
    converter c(schema);
    std::string gbnf = c.run();
    return gbnf;
}

json_schema_rules json_schemas_to_gbnf_rules(const std::vector<json>& schemas, const std::string& prefix) {
    static const json empty = json::object();
    converter c(empty);
    json_schema_rules out;
    for (size_t i = 0; i < schemas.size(); ++i) out.names.push_back(c.document(schemas[i], prefix + std::to_string(i)));
    out.gbnf = c.text();
    return out;
}

std::shared_ptr<const grammar> json_schema_to_grammar(const json& schema) {
    const std::string gbnf = json_schema_to_gbnf(schema);
    try {
        return parse_grammar(gbnf);
    } catch (const grammar_error& e) {
        // A converter bug, not the user's: say so with the grammar it made.
        throw error(fmt::format("internal error: the grammar made from the JSON schema does not parse ({})\n{}",
                                e.what(), gbnf));
    }
}

const std::string& json_object_gbnf() {
    static const std::string k = json_schema_to_gbnf(json{{"type", "object"}});
    return k;
}

std::shared_ptr<const grammar> json_object_grammar() {
    static const std::shared_ptr<const grammar> k = parse_grammar(json_object_gbnf());
    return k;
}

}  // namespace edgellm::sampling
