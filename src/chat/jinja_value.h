// Dynamic values of the Jinja2 interpreter: Python-like scalars, lists and insertion-ordered
// dicts with reference semantics, callables, and jinja2's default Undefined.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace edgellm::jinja {

// A template syntax or evaluation error; the message carries the line (and column) when known.
class template_error : public edgellm::error {
public:
    using edgellm::error::error;
};

class value;
struct call_args;
using value_list = std::vector<value>;
using function_t = std::function<value(call_args&)>;

// Insertion-ordered dict with string keys (Python dicts keep insertion order; chat template
// contexts only ever use string keys).
struct value_dict {
    std::vector<std::pair<std::string, value>> items;
    bool is_namespace = false;  // namespace() objects accept `{% set ns.attr = ... %}`

    const value* find(const std::string& key) const;
    value* find(const std::string& key);
    void set(const std::string& key, value v);
};

class value {
public:
    enum class kind { undefined, none, boolean, integer, floating, string, list, dict, function };

    value() = default;  // undefined
    static value undefined(std::string hint = {});
    static value none();
    value(bool b);
    value(int v) : value(static_cast<int64_t>(v)) {}
    value(int64_t v);
    value(double v);
    value(std::string s);
    value(const char* s) : value(std::string(s)) {}
    static value make_list(value_list items = {});
    static value make_tuple(value_list items);  // a list that prints as a Python tuple
    bool is_tuple() const { return tuple_; }
    static value make_dict();
    static value make_function(std::string name, function_t fn);
    static value from_json(const nlohmann::ordered_json& j);

    kind type() const { return kind_; }
    bool is_undefined() const { return kind_ == kind::undefined; }
    bool is_none() const { return kind_ == kind::none; }
    bool is_bool() const { return kind_ == kind::boolean; }
    bool is_int() const { return kind_ == kind::integer; }
    bool is_float() const { return kind_ == kind::floating; }
    bool is_number() const { return is_int() || is_float() || is_bool(); }
    bool is_string() const { return kind_ == kind::string; }
    bool is_list() const { return kind_ == kind::list; }
    bool is_dict() const { return kind_ == kind::dict; }
    bool is_function() const { return kind_ == kind::function; }

    bool as_bool() const { return b_; }
    int64_t as_int() const;  // integers and booleans
    double as_double() const;
    const std::string& as_string() const { return s_; }  // string content, or undefined hint
    value_list& list() const { return *list_; }
    value_dict& dict() const { return *dict_; }
    const function_t& function() const { return *fn_; }
    const std::string& function_name() const { return s_; }

    bool truthy() const;
    // Python len(): code points of a string, items of a list or dict.
    size_t length() const;
    // Python str() as jinja2 prints it ("" for undefined, "None", "True", "[1, 'a']").
    std::string str() const;
    // Python repr().
    std::string repr() const;
    // Python json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...).
    std::string to_json(std::optional<int> indent = std::nullopt,
                        std::optional<std::pair<std::string, std::string>> separators = std::nullopt,
                        bool sort_keys = false) const;
    nlohmann::ordered_json to_nlohmann() const;
    // Python type name for messages ("dict object", "str object").
    std::string type_name() const;

    // The items that `for x in v` visits (dict keys, string characters, list items).
    value_list iterate() const;

private:
    kind kind_ = kind::undefined;
    bool b_ = false;
    bool tuple_ = false;
    int64_t i_ = 0;
    double f_ = 0;
    std::string s_;
    std::shared_ptr<value_list> list_;
    std::shared_ptr<value_dict> dict_;
    std::shared_ptr<function_t> fn_;
};

// Python ==, and ordering (<) which throws template_error on incomparable types.
bool values_equal(const value& a, const value& b);
bool value_less(const value& a, const value& b);

// Arguments of a call: positional, then keyword in source order.
struct call_args {
    value_list pos;
    std::vector<std::pair<std::string, value>> kw;

    // The argument at position `i` or named `name`, or `def` when absent.
    value get(size_t i, const std::string& name, value def = value()) const;
    bool has(size_t i, const std::string& name) const;
};

// UTF-8 helpers shared by the builtins (Python strings index by code point).
std::vector<std::string> utf8_chars(const std::string& s);
std::string python_float_repr(double d);

}  // namespace edgellm::jinja
