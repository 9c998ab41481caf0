// Jinja2 value semantics: Python truthiness, str()/repr(), json.dumps, equality and ordering.
#include "chat/jinja_value.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace edgellm::jinja {

const value* value_dict::find(const std::string& key) const {
    for (const auto& [k, v] : items)
        if (k == key) return &v;
    return nullptr;
}

value* value_dict::find(const std::string& key) {
    for (auto& [k, v] : items)
        if (k == key) return &v;
    return nullptr;
}

void value_dict::set(const std::string& key, value v) {
    if (value* existing = find(key)) {
        *existing = std::move(v);
    } else {
        items.emplace_back(key, std::move(v));
    }
}

value value::undefined(std::string hint) {
    value v;
    v.s_ = std::move(hint);
    return v;
}

value value::none() {
    value v;
    v.kind_ = kind::none;
    return v;
}

value::value(bool b) : kind_(kind::boolean), b_(b), i_(b ? 1 : 0) {}
value::value(int64_t v) : kind_(kind::integer), i_(v) {}
value::value(double v) : kind_(kind::floating), f_(v) {}
value::value(std::string s) : kind_(kind::string), s_(std::move(s)) {}

value value::make_list(value_list items) {
    value v;
    v.kind_ = kind::list;
    v.list_ = std::make_shared<value_list>(std::move(items));
    return v;
}

value value::make_tuple(value_list items) {
    value v = make_list(std::move(items));
    v.tuple_ = true;
    return v;
}

value value::make_dict() {
    value v;
    v.kind_ = kind::dict;
    v.dict_ = std::make_shared<value_dict>();
    return v;
}

value value::make_function(std::string name, function_t fn) {
    value v;
    v.kind_ = kind::function;
    v.s_ = std::move(name);
    v.fn_ = std::make_shared<function_t>(std::move(fn));
    return v;
}

value value::from_json(const nlohmann::ordered_json& j) {
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return none();
        case nlohmann::ordered_json::value_t::boolean: return value(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return value(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned:
            return value(static_cast<int64_t>(j.get<uint64_t>()));
        case nlohmann::ordered_json::value_t::number_float: return value(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return value(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            value_list items;
            for (const auto& e : j) items.push_back(from_json(e));
            return make_list(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
            value d = make_dict();
            for (auto it = j.begin(); it != j.end(); ++it) d.dict().set(it.key(), from_json(it.value()));
            return d;
        }
        default: return none();
    }
}

int64_t value::as_int() const {
    if (is_float()) return static_cast<int64_t>(f_);
    return i_;
}

double value::as_double() const { return is_float() ? f_ : static_cast<double>(i_); }

bool value::truthy() const {
    switch (kind_) {
        case kind::undefined:
        case kind::none: return false;
        case kind::boolean: return b_;
        case kind::integer: return i_ != 0;
        case kind::floating: return f_ != 0.0;
        case kind::string: return !s_.empty();
        case kind::list: return !list_->empty();
        case kind::dict: return !dict_->items.empty();
        case kind::function: return true;
    }
    return false;
}

static size_t utf8_length(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

std::vector<std::string> utf8_chars(const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        size_t j = i + 1;
        while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
        out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

size_t value::length() const {
    switch (kind_) {
        case kind::string: return utf8_length(s_);
        case kind::list: return list_->size();
        case kind::dict: return dict_->items.size();
        case kind::undefined: return 0;
        default: throw template_error("object of type '" + type_name() + "' has no len()");
    }
}

// Python's float repr: shortest round-trip digits, exponent form outside 1e-4 <= |x| < 1e16.
std::string python_float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    // sci looks like "-1.2345e+05"
    bool neg = sci[0] == '-';
    if (neg) sci.erase(0, 1);
    size_t e = sci.find('e');
    std::string mant = sci.substr(0, e);
    int exp10 = std::stoi(sci.substr(e + 1));
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    int decpt = exp10 + 1;  // position of the decimal point relative to the digits
    std::string out;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out = "0." + std::string(-decpt, '0') + digits;
        } else if (static_cast<size_t>(decpt) >= digits.size()) {
            out = digits + std::string(decpt - digits.size(), '0') + ".0";
        } else {
            out = digits.substr(0, decpt) + "." + digits.substr(decpt);
        }
    } else {
        out = digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
        out += eb;
    }
    return neg ? "-" + out : out;
}

// Python's str.isprintable() for one code point: everything but the Other and Separator
// categories, except the ASCII space.
static bool py_printable(int32_t cp) {
    if (cp == ' ') return true;
    switch (utf8proc_category(cp)) {
        case UTF8PROC_CATEGORY_CC:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS:
        case UTF8PROC_CATEGORY_CO:
        case UTF8PROC_CATEGORY_CN:
        case UTF8PROC_CATEGORY_ZL:
        case UTF8PROC_CATEGORY_ZP:
        case UTF8PROC_CATEGORY_ZS: return false;
        default: return true;
    }
}

static std::string python_string_repr(const std::string& s) {
    char quote = '\'';
    if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) quote = '"';
    std::string out(1, quote);
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0) {  // invalid UTF-8 byte: shown like Python's surrogateescape repr
            char buf[16];
            std::snprintf(buf, sizeof buf, "\\udc%02x", *p);
            out += buf;
            ++p;
            --left;
            continue;
        }
        if (cp == quote || cp == '\\') {
            out += '\\';
            out += static_cast<char>(cp);
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (!py_printable(cp)) {
            char buf[16];
            if (cp < 0x100) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
            else if (cp < 0x10000) std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
            else std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
            out += buf;
        } else {
            out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
        }
        p += n;
        left -= n;
    }
    out += quote;
    return out;
}

std::string value::str() const {
    switch (kind_) {
        case kind::undefined: return "";
        case kind::string: return s_;
        default: return repr();
    }
}

namespace {
// Values can nest arbitrarily deep at run time ({% set ns.a = [ns.a] %} in a loop); printing
// them recursively must not exhaust the stack.
constexpr int k_max_print_depth = 512;
thread_local int print_depth = 0;
struct print_guard {
    print_guard() {
        if (++print_depth > k_max_print_depth) {
            --print_depth;
            throw template_error("value nests too deeply to print");
        }
    }
    ~print_guard() { --print_depth; }
};
}  // namespace

std::string value::repr() const {
    print_guard guard;
    switch (kind_) {
        case kind::undefined: return "Undefined";
        case kind::none: return "None";
        case kind::boolean: return b_ ? "True" : "False";
        case kind::integer: return std::to_string(i_);
        case kind::floating: return python_float_repr(f_);
        case kind::string: return python_string_repr(s_);
        case kind::list: {
            std::string out = tuple_ ? "(" : "[";
            for (size_t i = 0; i < list_->size(); ++i) {
                if (i) out += ", ";
                out += (*list_)[i].repr();
            }
            if (tuple_) return out + (list_->size() == 1 ? ",)" : ")");
            return out + "]";
        }
        case kind::dict: {
            if (dict_->is_namespace) return "<Namespace>";
            std::string out = "{";
            bool first = true;
            for (const auto& [k, v] : dict_->items) {
                if (!first) out += ", ";
                first = false;
                out += python_string_repr(k) + ": " + v.repr();
            }
            return out + "}";
        }
        case kind::function: return "<function " + s_ + ">";
    }
    return "";
}

std::string value::type_name() const {
    switch (kind_) {
        case kind::undefined: return "Undefined";
        case kind::none: return "NoneType";
        case kind::boolean: return "bool";
        case kind::integer: return "int";
        case kind::floating: return "float";
        case kind::string: return "str";
        case kind::list: return "list";
        case kind::dict: return dict_->is_namespace ? "Namespace" : "dict";
        case kind::function: return "function";
    }
    return "object";
}

static void json_escape(const std::string& s, std::string& out) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

namespace {
struct json_writer {
    std::optional<int> indent;
    std::string item_sep, key_sep;
    bool sort_keys;
    std::string out;

    void newline(int level) {
        out += '\n';
        out.append(static_cast<size_t>(*indent) * level, ' ');
    }

    void write(const value& v, int level) {
        if (level > k_max_print_depth) throw template_error("value nests too deeply for tojson");
        switch (v.type()) {
            case value::kind::none: out += "null"; break;
            case value::kind::boolean: out += v.as_bool() ? "true" : "false"; break;
            case value::kind::integer: out += std::to_string(v.as_int()); break;
            case value::kind::floating: {
                double d = v.as_double();
                if (std::isnan(d)) out += "NaN";
                else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
                else out += python_float_repr(d);
                break;
            }
            case value::kind::string: json_escape(v.as_string(), out); break;
            case value::kind::list: {
                const auto& items = v.list();
                if (items.empty()) {
                    out += "[]";
                    break;
                }
                out += '[';
                for (size_t i = 0; i < items.size(); ++i) {
                    if (i) out += item_sep;
                    if (indent) newline(level + 1);
                    write(items[i], level + 1);
                }
                if (indent) newline(level);
                out += ']';
                break;
            }
            case value::kind::dict: {
                auto items = v.dict().items;
                if (items.empty()) {
                    out += "{}";
                    break;
                }
                if (sort_keys)
                    std::stable_sort(items.begin(), items.end(),
                                     [](const auto& a, const auto& b) { return a.first < b.first; });
                out += '{';
                for (size_t i = 0; i < items.size(); ++i) {
                    if (i) out += item_sep;
                    if (indent) newline(level + 1);
                    json_escape(items[i].first, out);
                    out += key_sep;
                    write(items[i].second, level + 1);
                }
                if (indent) newline(level);
                out += '}';
                break;
            }
            default:
                throw template_error("Object of type " + v.type_name() + " is not JSON serializable");
        }
    }
};
}  // namespace

std::string value::to_json(std::optional<int> indent,
                           std::optional<std::pair<std::string, std::string>> separators,
                           bool sort_keys) const {
    json_writer w;
    w.indent = indent;
    if (separators) {
        w.item_sep = separators->first;
        w.key_sep = separators->second;
    } else {
        w.item_sep = indent ? "," : ", ";
        w.key_sep = ": ";
    }
    w.sort_keys = sort_keys;
    w.write(*this, 0);
    return std::move(w.out);
}

nlohmann::ordered_json value::to_nlohmann() const {
    switch (kind_) {
        case kind::none: return nullptr;
        case kind::boolean: return b_;
        case kind::integer: return i_;
        case kind::floating: return f_;
        case kind::string: return s_;
        case kind::list: {
            auto j = nlohmann::ordered_json::array();
            for (const auto& e : *list_) j.push_back(e.to_nlohmann());
            return j;
        }
        case kind::dict: {
            auto j = nlohmann::ordered_json::object();
            for (const auto& [k, v] : dict_->items) j[k] = v.to_nlohmann();
            return j;
        }
        default: throw template_error("Object of type " + type_name() + " is not JSON serializable");
    }
}

value_list value::iterate() const {
    switch (kind_) {
        case kind::undefined: return {};
        case kind::list: return *list_;
        case kind::dict: {
            value_list keys;
            for (const auto& kv : dict_->items) keys.emplace_back(kv.first);
            return keys;
        }
        case kind::string: {
            value_list chars;
            for (auto& c : utf8_chars(s_)) chars.emplace_back(std::move(c));
            return chars;
        }
        default: throw template_error("'" + type_name() + "' object is not iterable");
    }
}

bool values_equal(const value& a, const value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
        return a.as_int() == b.as_int();
    }
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case value::kind::undefined:
        case value::kind::none: return true;
        case value::kind::string: return a.as_string() == b.as_string();
        case value::kind::list: {
            const auto &x = a.list(), &y = b.list();
            if (x.size() != y.size()) return false;
            for (size_t i = 0; i < x.size(); ++i)
                if (!values_equal(x[i], y[i])) return false;
            return true;
        }
        case value::kind::dict: {
            const auto &x = a.dict().items, &y = b.dict().items;
            if (x.size() != y.size()) return false;
            for (const auto& [k, v] : x) {
                const value* o = b.dict().find(k);
                if (!o || !values_equal(v, *o)) return false;
            }
            return true;
        }
        case value::kind::function: return &a.function() == &b.function();
        default: return false;
    }
}

bool value_less(const value& a, const value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
        return a.as_int() < b.as_int();
    }
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    if (a.is_list() && b.is_list()) {
        const auto &x = a.list(), &y = b.list();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (value_less(x[i], y[i])) return true;
            if (value_less(y[i], x[i])) return false;
        }
        return x.size() < y.size();
    }
    throw template_error("'<' not supported between instances of '" + a.type_name() + "' and '" +
                         b.type_name() + "'");
}

value call_args::get(size_t i, const std::string& name, value def) const {
    for (const auto& [k, v] : kw)
        if (k == name) return v;
    if (i < pos.size()) return pos[i];
    return def;
}

bool call_args::has(size_t i, const std::string& name) const {
    if (i < pos.size()) return true;
    for (const auto& kv : kw)
        if (kv.first == name) return true;
    return false;
}

}  // namespace edgellm::jinja
