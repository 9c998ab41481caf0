// Jinja2 builtins: attribute/item access with the sandbox's rules, Python str/dict/list
// methods, arithmetic with Python semantics, and the globals HF exposes to chat templates.
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"
#include "chat/jinja_strings.h"

namespace edgellm::jinja {

[[noreturn]] void undefined_error(const value& undef) {
    throw template_error(undef.as_string().empty() ? "undefined value" : undef.as_string());
}

namespace {

value method(const std::string& name, function_t fn) { return value::make_function(name, std::move(fn)); }

std::string arg_string(const call_args& a, size_t i, const std::string& name, const std::string& what) {
    value v = a.get(i, name);
    if (!v.is_string()) throw template_error(what + "() argument must be str, not " + v.type_name());
    return v.as_string();
}

value string_method(const std::string& s, const std::string& name) {
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        return method(name, [s, name](call_args& a) {
            value chars = a.get(0, "chars", value::none());
            bool left = name != "rstrip", right = name != "lstrip";
            return value(py_strip(s, chars.is_string() ? &chars.as_string() : nullptr, left, right));
        });
    }
    if (name == "split" || name == "rsplit") {
        return method(name, [s, name](call_args& a) {
            value sep = a.get(0, "sep", value::none());
            int64_t maxsplit = a.get(1, "maxsplit", value(int64_t{-1})).as_int();
            value_list out;
            for (auto& p : py_split(s, sep.is_string() ? &sep.as_string() : nullptr, maxsplit, name == "rsplit"))
                out.emplace_back(std::move(p));
            return value::make_list(std::move(out));
        });
    }
    if (name == "splitlines") {
        return method(name, [s](call_args&) {
            value_list out;
            for (auto& p : py_splitlines(s)) out.emplace_back(std::move(p));
            return value::make_list(std::move(out));
        });
    }
    if (name == "startswith" || name == "endswith") {
        return method(name, [s, name](call_args& a) {
            value p = a.get(0, "prefix");
            value_list options = p.is_list() ? p.list() : value_list{p};
            for (const auto& o : options) {
                if (!o.is_string()) throw template_error(name + " first arg must be str or a tuple of str");
                const std::string& x = o.as_string();
                bool hit = name == "startswith" ? s.rfind(x, 0) == 0
                                                : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
                if (hit) return value(true);
            }
            return value(false);
        });
    }
    if (name == "upper") return method(name, [s](call_args&) { return value(py_upper(s)); });
    if (name == "lower" || name == "casefold") return method(name, [s](call_args&) { return value(py_lower(s)); });
    if (name == "title") return method(name, [s](call_args&) { return value(py_title(s)); });
    if (name == "capitalize") return method(name, [s](call_args&) { return value(py_capitalize(s)); });
    if (name == "swapcase") return method(name, [s](call_args&) { return value(py_swapcase(s)); });
    if (name == "replace") {
        return method(name, [s](call_args& a) {
            std::string from = arg_string(a, 0, "old", "replace"), to = arg_string(a, 1, "new", "replace");
            int64_t count = a.get(2, "count", value(int64_t{-1})).as_int();
            return value(py_replace(s, from, to, count));
        });
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
        return method(name, [s, name](call_args& a) {
            std::string sub = arg_string(a, 0, "sub", name);
            if (name == "count") return value(py_count(s, sub));
            bool rev = name[0] == 'r';
            int64_t idx = py_find(s, sub, rev);
            if (idx < 0 && name.find("index") != std::string::npos) throw template_error("substring not found");
            return value(idx);
        });
    }
    if (name == "join") {
        return method(name, [s](call_args& a) {
            std::string out;
            bool first = true;
            for (const auto& x : a.get(0, "iterable").iterate()) {
                if (!x.is_string())
                    throw template_error("sequence item: expected str instance, " + x.type_name() + " found");
                if (!first) out += s;
                first = false;
                out += x.as_string();
            }
            return value(std::move(out));
        });
    }
    if (name == "format") return method(name, [s](call_args& a) { return value(py_str_format(s, a)); });
    if (name == "isdigit" || name == "isnumeric" || name == "isdecimal" || name == "isalpha" || name == "isalnum" ||
        name == "isspace" || name == "islower" || name == "isupper" || name == "istitle") {
        return method(name, [s, name](call_args&) { return value(py_is(s, name)); });
    }
    if (name == "zfill" || name == "center" || name == "ljust" || name == "rjust") {
        return method(name, [s, name](call_args& a) {
            int64_t width = a.get(0, "width", value(int64_t{0})).as_int();
            std::string fill = a.get(1, "fillchar", value(" ")).str();
            return value(py_pad(s, name, width, fill));
        });
    }
    return value::undefined("'str object' has no attribute '" + name + "'");
}

value dict_method(const value& d, const std::string& name) {
    if (name == "items") {
        return method(name, [d](call_args&) {
            value_list out;
            for (const auto& [k, v] : d.dict().items) out.push_back(value::make_tuple({value(k), v}));
            return value::make_list(std::move(out));
        });
    }
    if (name == "keys") {
        return method(name, [d](call_args&) {
            value_list out;
            for (const auto& kv : d.dict().items) out.emplace_back(kv.first);
            return value::make_list(std::move(out));
        });
    }
    if (name == "values") {
        return method(name, [d](call_args&) {
            value_list out;
            for (const auto& kv : d.dict().items) out.push_back(kv.second);
            return value::make_list(std::move(out));
        });
    }
    if (name == "get") {
        return method(name, [d](call_args& a) {
            value k = a.get(0, "key");
            const value* v = k.is_string() ? d.dict().find(k.as_string()) : nullptr;
            return v ? *v : a.get(1, "default", value::none());
        });
    }
    return value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.");
}

bool is_dict_attribute(const std::string& name) {
    static const char* names[] = {"items", "keys", "values", "get", "copy", "update", "pop", "popitem",
                                  "setdefault", "clear", "fromkeys"};
    return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

value list_method(const value& l, const std::string& name) {
    if (name == "append") {
        // Python's ImmutableSandboxedEnvironment forbids this; llama.cpp's minja and many
        // community templates rely on it, so we allow it.
        return method(name, [l](call_args& a) {
            l.list().push_back(a.get(0, "object"));
            return value::none();
        });
    }
    if (name == "index") {
        return method(name, [l](call_args& a) {
            value x = a.get(0, "value");
            for (size_t i = 0; i < l.list().size(); ++i)
                if (values_equal(l.list()[i], x)) return value(static_cast<int64_t>(i));
            throw template_error(x.repr() + " is not in list");
        });
    }
    if (name == "count") {
        return method(name, [l](call_args& a) {
            value x = a.get(0, "value");
            int64_t n = 0;
            for (const auto& e : l.list()) n += values_equal(e, x);
            return value(n);
        });
    }
    return value::undefined("'list object' has no attribute '" + name + "'");
}

}  // namespace

value get_attribute(const value& obj, const std::string& name) {
    switch (obj.type()) {
        case value::kind::undefined: undefined_error(obj);
        case value::kind::string: return string_method(obj.as_string(), name);
        case value::kind::list: return list_method(obj, name);
        case value::kind::dict: {
            if (!obj.dict().is_namespace && is_dict_attribute(name)) return dict_method(obj, name);
            if (const value* v = obj.dict().find(name)) return *v;
            return value::undefined("'" + std::string(obj.dict().is_namespace ? "Namespace" : "dict object") +
                                    "' has no attribute '" + name + "'");
        }
        default: return value::undefined("'" + obj.repr() + "' has no attribute '" + name + "'");
    }
}

value get_item(const value& obj, const value& key) {
    switch (obj.type()) {
        case value::kind::undefined: undefined_error(obj);
        case value::kind::dict:
            if (key.is_string()) {
                if (const value* v = obj.dict().find(key.as_string())) return *v;
                if (!obj.dict().is_namespace && is_dict_attribute(key.as_string()))
                    return dict_method(obj, key.as_string());
            }
            return value::undefined("'dict object' has no attribute '" + key.str() + "'");
        case value::kind::list:
        case value::kind::string: {
            if (key.is_string()) return get_attribute(obj, key.as_string());
            if (!key.is_int() && !key.is_bool())
                throw template_error(obj.type_name() + " indices must be integers or slices, not " + key.type_name());
            int64_t n = static_cast<int64_t>(obj.length());
            int64_t i = key.as_int();
            if (i < 0) i += n;
            if (i < 0 || i >= n)
                return value::undefined("'" + obj.type_name() + " object' has no element " + key.str());
            if (obj.is_list()) return obj.list()[i];
            return value(utf8_chars(obj.as_string())[i]);
        }
        default: return value::undefined("'" + obj.repr() + "' has no attribute '" + key.str() + "'");
    }
}

value call_value(context& ctx, const value& fn, call_args& args, int) {
    ctx.tick();
    if (fn.is_function()) return fn.function()(args);
    if (fn.is_dict())
        if (const value* c = fn.dict().find("__call__"); c && c->is_function()) return c->function()(args);
    if (fn.is_undefined()) undefined_error(fn);
    throw template_error("'" + fn.type_name() + "' object is not callable");
}

namespace {
int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

[[noreturn]] void bad_operands(const std::string& op, const value& a, const value& b) {
    throw template_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
                         b.type_name() + "'");
}

value repeat(const value& seq, int64_t n) {
    if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return value(std::move(out));
    }
    value_list out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
    return value::make_list(std::move(out));
}
}  // namespace

value arithmetic(const std::string& op, const value& a, const value& b) {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    const bool nums = a.is_number() && b.is_number();
    const bool ints = nums && !a.is_float() && !b.is_float();
    if (op == "+") {
        if (ints) return value(a.as_int() + b.as_int());
        if (nums) return value(a.as_double() + b.as_double());
        if (a.is_string() && b.is_string()) return value(a.as_string() + b.as_string());
        if (a.is_list() && b.is_list()) {
            value_list out = a.list();
            out.insert(out.end(), b.list().begin(), b.list().end());
            return value::make_list(std::move(out));
        }
        bad_operands(op, a, b);
    }
    if (op == "-") {
        if (ints) return value(a.as_int() - b.as_int());
        if (nums) return value(a.as_double() - b.as_double());
        bad_operands(op, a, b);
    }
    if (op == "*") {
        if (ints) return value(a.as_int() * b.as_int());
        if (nums) return value(a.as_double() * b.as_double());
        if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
            if (b.as_int() > 1'000'000) throw template_error("sequence repetition too large");
            return repeat(a, b.as_int());
        }
        if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return arithmetic(op, b, a);
        bad_operands(op, a, b);
    }
    if (op == "%" && a.is_string()) {
        call_args args;
        if (b.is_list()) args.pos = b.list();
        else args.pos.push_back(b);
        return value(py_percent_format(a.as_string(), args, b.is_dict() ? &b : nullptr));
    }
    if (!nums) bad_operands(op, a, b);
    if (op == "/") {
        if (b.as_double() == 0) throw template_error("division by zero");
        return value(a.as_double() / b.as_double());
    }
    if (op == "//") {
        if (b.as_double() == 0) throw template_error("integer division or modulo by zero");
        if (ints) return value(floor_div(a.as_int(), b.as_int()));
        return value(std::floor(a.as_double() / b.as_double()));
    }
    if (op == "%") {
        if (b.as_double() == 0) throw template_error("integer division or modulo by zero");
        if (ints) return value(a.as_int() - floor_div(a.as_int(), b.as_int()) * b.as_int());
        double r = std::fmod(a.as_double(), b.as_double());
        if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
        return value(r);
    }
    if (op == "**") {
        if (ints && b.as_int() >= 0) {
            int64_t r = 1, base = a.as_int();
            for (int64_t e = b.as_int(); e > 0; --e) r *= base;
            return value(r);
        }
        return value(std::pow(a.as_double(), b.as_double()));
    }
    throw template_error("unknown operator " + op);
}

namespace {
std::string strftime_now(const render_options& opts, const std::string& fmt) {
    auto now = opts.now ? opts.now() : std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    if (opts.now_is_utc) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    if (fmt.empty()) return "";
    std::string buf(fmt.size() * 4 + 64, '\0');
    for (int attempt = 0; attempt < 8; ++attempt) {
        size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
        if (n > 0) return buf.substr(0, n);
        buf.resize(buf.size() * 4);
    }
    return "";
}
}  // namespace

value make_global_functions(const render_options& opts) {
    value g = value::make_dict();
    auto& d = g.dict();
    d.set("range", method("range", [](call_args& a) {
              if (a.pos.empty() || a.pos.size() > 3) throw template_error("range expected 1 to 3 arguments");
              for (const auto& x : a.pos)
                  if (!x.is_int() && !x.is_bool())
                      throw template_error("'" + x.type_name() + "' object cannot be interpreted as an integer");
              int64_t start = 0, stop, step = 1;
              if (a.pos.size() == 1) {
                  stop = a.pos[0].as_int();
              } else {
                  start = a.pos[0].as_int();
                  stop = a.pos[1].as_int();
                  if (a.pos.size() == 3) step = a.pos[2].as_int();
              }
              if (step == 0) throw template_error("range() arg 3 must not be zero");
              int64_t n = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                                   : (start > stop ? (start - stop - step - 1) / -step : 0);
              // Same cap as jinja2's sandbox (MAX_RANGE).
              if (n > 100000)
                  throw template_error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
              value_list out;
              for (int64_t i = 0; i < n; ++i) out.emplace_back(start + i * step);
              return value::make_list(std::move(out));
          }));
    auto make_dict = [](bool ns) {
        return [ns](call_args& a) {
            value r = value::make_dict();
            r.dict().is_namespace = ns;
            for (const auto& p : a.pos) {
                if (p.is_dict()) {
                    for (const auto& kv : p.dict().items) r.dict().set(kv.first, kv.second);
                } else {
                    for (const auto& pair : p.iterate()) {
                        value_list kv = pair.iterate();
                        if (kv.size() != 2) throw template_error("dictionary update sequence element has wrong length");
                        r.dict().set(kv[0].str(), kv[1]);
                    }
                }
            }
            for (const auto& kv : a.kw) r.dict().set(kv.first, kv.second);
            return r;
        };
    };
    d.set("dict", method("dict", make_dict(false)));
    d.set("namespace", method("namespace", make_dict(true)));
    d.set("raise_exception", method("raise_exception", [](call_args& a) -> value {
              throw template_error(a.get(0, "message", value("")).str());
          }));
    d.set("strftime_now", method("strftime_now", [opts](call_args& a) {
              return value(strftime_now(opts, a.get(0, "format", value("")).str()));
          }));
    d.set("joiner", method("joiner", [](call_args& a) {
              std::string sep = a.get(0, "sep", value(", ")).str();
              auto used = std::make_shared<bool>(false);
              return method("joiner", [sep, used](call_args&) {
                  if (!*used) {
                      *used = true;
                      return value("");
                  }
                  return value(sep);
              });
          }));
    return g;
}

}  // namespace edgellm::jinja
