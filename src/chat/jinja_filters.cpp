// Jinja2 filters and tests (jinja2/filters.py, jinja2/tests.py) plus HF's tojson, which
// keeps non-ASCII text and takes indent/separators/sort_keys like json.dumps.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"
#include "chat/jinja_strings.h"

namespace edgellm::jinja {

namespace {

using filter_fn = std::function<value(context&, value&, call_args&)>;
using test_fn = std::function<bool(context&, const value&, call_args&)>;

int64_t int_arg(const call_args& a, size_t i, const std::string& name, int64_t def) {
    value v = a.get(i, name, value(def));
    if (!v.is_number()) throw template_error("argument '" + name + "' must be an integer, not " + v.type_name());
    return v.as_int();
}

std::string soft_str(const value& v) { return v.str(); }

// Resolves a dotted attribute path ("a.b" or "0") as jinja2's make_attrgetter does.
value attr_path(const value& obj, const std::string& path) {
    value cur = obj;
    size_t start = 0;
    while (true) {
        size_t dot = path.find('.', start);
        std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
        cur = numeric ? get_item(cur, value(static_cast<int64_t>(std::stoll(part)))) : get_item(cur, value(part));
        if (dot == std::string::npos) return cur;
        start = dot + 1;
    }
}

// Sort key as jinja2 builds it: lower-cased strings unless case_sensitive.
value sort_key(const value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return value(py_lower(v.as_string()));
    return v;
}

value_list select_items(context& ctx, value& in, call_args& a, bool by_attr, bool keep) {
    value_list out;
    size_t next = 0;
    std::string attr;
    if (by_attr) attr = a.get(next++, "attribute").str();
    bool has_test = next < a.pos.size();
    std::string test_name = has_test ? a.pos[next].str() : "";
    call_args test_args;
    if (has_test) test_args.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(next + 1), a.pos.end());
    if (!in.truthy()) return out;  // jinja2 yields nothing for falsy input (None, empty, undefined)
    for (const auto& item : in.iterate()) {
        value subject = by_attr ? attr_path(item, attr) : item;
        bool r = has_test ? apply_test(ctx, test_name, subject, test_args) : subject.truthy();
        if (r == keep) out.push_back(item);
    }
    return out;
}

value do_round(const value& v, int64_t precision, const std::string& method) {
    if (!v.is_number()) throw template_error("round() requires a number, got " + v.type_name());
    if (v.is_int() && method == "common") return v;
    double x = v.as_double();
    if (method == "common" && precision >= 0 && precision < 300) {
        // Python's round() rounds the exact binary value (2.675 -> 2.67), ties to even; so
        // does glibc's printf.
        char buf[400];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
        return value(std::strtod(buf, nullptr));
    }
    double scale = std::pow(10.0, static_cast<double>(precision));
    double y = x * scale;
    if (method == "common") y = std::nearbyint(y);
    else if (method == "ceil") y = std::ceil(y);
    else if (method == "floor") y = std::floor(y);
    else throw template_error("method must be common, ceil or floor");
    return value(y / scale);
}

std::string do_indent(std::string s, const value& width, bool first, bool blank) {
    std::string indention = width.is_string() ? width.as_string() : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
    s += "\n";
    auto lines = py_splitlines(s);
    std::string rv;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) {
            rv += '\n';
            if (blank || !lines[i].empty()) rv += indention;
        }
        rv += lines[i];
    }
    if (first) rv = indention + rv;
    return rv;
}

const std::map<std::string, filter_fn>& filters() {
    static const std::map<std::string, filter_fn> table = [] {
        std::map<std::string, filter_fn> f;
        f["abs"] = [](context&, value& v, call_args&) -> value {
            if (v.is_float()) return value(std::fabs(v.as_double()));
            if (v.is_number()) return value(static_cast<int64_t>(std::llabs(v.as_int())));
            throw template_error("bad operand type for abs(): '" + v.type_name() + "'");
        };
        f["attr"] = [](context&, value& v, call_args& a) {
            // Python getattr only: dict keys are not attributes here, unlike `obj.name`.
            std::string name = a.get(0, "name").str();
            if (v.is_dict() && !v.dict().is_namespace && v.dict().find(name) != nullptr)
                return value::undefined("'dict object' has no attribute '" + name + "'");
            return get_attribute(v, name);
        };
        f["batch"] = [](context&, value& v, call_args& a) {
            int64_t n = int_arg(a, 0, "linecount", 1);
            if (n <= 0) throw template_error("batch size must be positive");
            value fill = a.get(1, "fill_with", value::none());
            value_list out, cur;
            for (auto& x : v.iterate()) {
                cur.push_back(x);
                if (static_cast<int64_t>(cur.size()) == n) out.push_back(value::make_list(std::exchange(cur, {})));
            }
            if (!cur.empty()) {
                if (!fill.is_none())
                    while (static_cast<int64_t>(cur.size()) < n) cur.push_back(fill);
                out.push_back(value::make_list(std::move(cur)));
            }
            return value::make_list(std::move(out));
        };
        f["capitalize"] = [](context&, value& v, call_args&) { return value(py_capitalize(soft_str(v))); };
        f["center"] = [](context&, value& v, call_args& a) {
            return value(py_pad(soft_str(v), "center", int_arg(a, 0, "width", 80), " "));
        };
        f["default"] = [](context&, value& v, call_args& a) {
            bool boolean = a.get(1, "boolean", value(false)).truthy();
            if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, "default_value", value(""));
            return v;
        };
        f["d"] = f["default"];
        f["dictsort"] = [](context&, value& v, call_args& a) {
            if (!v.is_dict()) throw template_error("dictsort expects a dict, got " + v.type_name());
            bool cs = a.get(0, "case_sensitive", value(false)).truthy();
            std::string by = a.get(1, "by", value("key")).str();
            bool rev = a.get(2, "reverse", value(false)).truthy();
            size_t pos = by == "key" ? 0 : by == "value" ? 1 : 2;
            if (pos == 2) throw template_error("You can only sort by either \"key\" or \"value\"");
            value_list items;
            for (const auto& [k, x] : v.dict().items) items.push_back(value::make_tuple({value(k), x}));
            std::stable_sort(items.begin(), items.end(), [&](const value& x, const value& y) {
                return value_less(sort_key(x.list()[pos], cs), sort_key(y.list()[pos], cs));
            });
            if (rev) std::reverse(items.begin(), items.end());
            return value::make_list(std::move(items));
        };
        f["escape"] = [](context&, value& v, call_args&) { return value(html_escape(soft_str(v))); };
        f["e"] = f["escape"];
        f["first"] = [](context&, value& v, call_args&) {
            value_list items = v.iterate();
            return items.empty() ? value::undefined("No first item, sequence was empty.") : items.front();
        };
        f["last"] = [](context&, value& v, call_args&) {
            value_list items = v.iterate();
            return items.empty() ? value::undefined("No last item, sequence was empty.") : items.back();
        };
        f["float"] = [](context&, value& v, call_args& a) -> value {
            value def = a.get(0, "default", value(0.0));
            if (v.is_number()) return value(v.as_double());
            if (v.is_string()) {
                try {
                    size_t used = 0;
                    std::string s = py_strip(v.as_string(), nullptr, true, true);
                    double d = std::stod(s, &used);
                    if (used == s.size()) return value(d);
                } catch (const std::exception&) {
                }
            }
            return def;
        };
        f["int"] = [](context&, value& v, call_args& a) -> value {
            value def = a.get(0, "default", value(int64_t{0}));
            int base = static_cast<int>(int_arg(a, 1, "base", 10));
            if (v.is_float()) return value(static_cast<int64_t>(v.as_double()));
            if (v.is_number()) return value(v.as_int());
            if (v.is_string()) {
                std::string s = py_strip(v.as_string(), nullptr, true, true);
                try {
                    size_t used = 0;
                    int64_t i = std::stoll(s, &used, base);
                    if (used == s.size()) return value(i);
                    double d = std::stod(s, &used);
                    if (used == s.size() && std::isfinite(d)) return value(static_cast<int64_t>(d));
                } catch (const std::exception&) {
                }
            }
            return def;
        };
        f["format"] = [](context&, value& v, call_args& a) {
            value mapping = a.pos.empty() && !a.kw.empty() ? value::make_dict() : value();
            for (const auto& kv : a.kw)
                if (mapping.is_dict()) mapping.dict().set(kv.first, kv.second);
            return value(py_percent_format(soft_str(v), a, mapping.is_dict() ? &mapping : nullptr));
        };
        f["indent"] = [](context&, value& v, call_args& a) {
            value width = a.get(0, "width", value(int64_t{4}));
            return value(do_indent(soft_str(v), width, a.get(1, "first", value(false)).truthy(),
                                   a.get(2, "blank", value(false)).truthy()));
        };
        f["items"] = [](context&, value& v, call_args&) -> value {
            if (v.is_undefined()) return value::make_list();
            if (!v.is_dict()) throw template_error("Can only get item pairs from a mapping.");
            value_list out;
            for (const auto& [k, x] : v.dict().items) out.push_back(value::make_tuple({value(k), x}));
            return value::make_list(std::move(out));
        };
        f["join"] = [](context&, value& v, call_args& a) {
            std::string sep = a.get(0, "d", value("")).str();
            value attr = a.get(1, "attribute", value::none());
            std::string out;
            bool first = true;
            for (const auto& x : v.iterate()) {
                if (!first) out += sep;
                first = false;
                out += (attr.is_none() ? x : attr_path(x, attr.str())).str();
            }
            return value(std::move(out));
        };
        f["length"] = [](context&, value& v, call_args&) { return value(static_cast<int64_t>(v.length())); };
        f["count"] = f["length"];
        f["list"] = [](context&, value& v, call_args&) { return value::make_list(v.iterate()); };
        f["lower"] = [](context&, value& v, call_args&) { return value(py_lower(soft_str(v))); };
        f["upper"] = [](context&, value& v, call_args&) { return value(py_upper(soft_str(v))); };
        f["title"] = [](context&, value& v, call_args&) { return value(jinja_title(soft_str(v))); };
        f["map"] = [](context& ctx, value& v, call_args& a) {
            value_list out;
            if (!v.truthy()) return value::make_list();
            value attr = a.get(99, "attribute");
            if (!attr.is_undefined()) {
                value def = a.get(99, "default");
                for (const auto& x : v.iterate()) {
                    value r = attr_path(x, attr.str());
                    out.push_back(r.is_undefined() && !def.is_undefined() ? def : r);
                }
            } else {
                if (a.pos.empty()) throw template_error("map requires a filter argument");
                std::string name = a.pos[0].str();
                call_args rest;
                rest.pos.assign(a.pos.begin() + 1, a.pos.end());
                rest.kw = a.kw;
                for (auto x : v.iterate()) out.push_back(apply_filter(ctx, name, x, rest));
            }
            return value::make_list(std::move(out));
        };
        auto minmax = [](bool want_max) {
            return [want_max](context&, value& v, call_args& a) -> value {
                bool cs = a.get(0, "case_sensitive", value(false)).truthy();
                value attr = a.get(1, "attribute", value::none());
                value_list items = v.iterate();
                if (items.empty()) return value::undefined("No aggregated item, sequence was empty.");
                value best = items[0];
                auto key = [&](const value& x) { return sort_key(attr.is_none() ? x : attr_path(x, attr.str()), cs); };
                for (const auto& x : items)
                    if (want_max ? value_less(key(best), key(x)) : value_less(key(x), key(best))) best = x;
                return best;
            };
        };
        f["max"] = minmax(true);
        f["min"] = minmax(false);
        f["reject"] = [](context& ctx, value& v, call_args& a) { return value::make_list(select_items(ctx, v, a, false, false)); };
        f["select"] = [](context& ctx, value& v, call_args& a) { return value::make_list(select_items(ctx, v, a, false, true)); };
        f["rejectattr"] = [](context& ctx, value& v, call_args& a) { return value::make_list(select_items(ctx, v, a, true, false)); };
        f["selectattr"] = [](context& ctx, value& v, call_args& a) { return value::make_list(select_items(ctx, v, a, true, true)); };
        f["replace"] = [](context&, value& v, call_args& a) {
            value count = a.get(2, "count", value::none());
            return value(py_replace(soft_str(v), a.get(0, "old").str(), a.get(1, "new").str(),
                                    count.is_none() ? -1 : count.as_int()));
        };
        f["reverse"] = [](context&, value& v, call_args&) -> value {
            if (v.is_string()) {
                auto u = to_u32(v.as_string());
                std::reverse(u.begin(), u.end());
                return value(from_u32(u));
            }
            value_list items = v.iterate();
            std::reverse(items.begin(), items.end());
            return value::make_list(std::move(items));
        };
        f["round"] = [](context&, value& v, call_args& a) {
            return do_round(v, int_arg(a, 0, "precision", 0), a.get(1, "method", value("common")).str());
        };
        f["safe"] = [](context&, value& v, call_args&) { return v; };
        f["sort"] = [](context&, value& v, call_args& a) {
            bool rev = a.get(0, "reverse", value(false)).truthy();
            bool cs = a.get(1, "case_sensitive", value(false)).truthy();
            value attr = a.get(2, "attribute", value::none());
            value_list items = v.iterate();
            auto key = [&](const value& x) { return sort_key(attr.is_none() ? x : attr_path(x, attr.str()), cs); };
            std::stable_sort(items.begin(), items.end(), [&](const value& x, const value& y) {
                return rev ? value_less(key(y), key(x)) : value_less(key(x), key(y));
            });
            return value::make_list(std::move(items));
        };
        f["string"] = [](context&, value& v, call_args&) { return value(soft_str(v)); };
        f["sum"] = [](context&, value& v, call_args& a) {
            value attr = a.get(0, "attribute", value::none());
            value total = a.get(1, "start", value(int64_t{0}));
            for (const auto& x : v.iterate()) total = arithmetic("+", total, attr.is_none() ? x : attr_path(x, attr.str()));
            return total;
        };
        f["tojson"] = [](context&, value& v, call_args& a) {
            bool ensure_ascii = a.get(0, "ensure_ascii", value(false)).truthy();
            value indent = a.get(1, "indent", value::none());
            value seps = a.get(2, "separators", value::none());
            bool sort_keys = a.get(3, "sort_keys", value(false)).truthy();
            std::optional<int> ind;
            if (!indent.is_none()) ind = static_cast<int>(indent.as_int());
            std::optional<std::pair<std::string, std::string>> sp;
            if (!seps.is_none()) {
                value_list p = seps.iterate();
                if (p.size() != 2) throw template_error("separators must be a (item, key) pair");
                sp = std::pair{p[0].str(), p[1].str()};
            }
            std::string out = v.to_json(ind, sp, sort_keys);
            if (ensure_ascii) {
                std::string esc;
                for (char32_t c : to_u32(out)) {
                    char buf[16];
                    if (c < 0x80) {
                        esc += static_cast<char>(c);
                    } else if (c < 0x10000) {
                        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                        esc += buf;
                    } else {
                        unsigned x = static_cast<unsigned>(c) - 0x10000;
                        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (x >> 10), 0xDC00 + (x & 0x3FF));
                        esc += buf;
                    }
                }
                out = std::move(esc);
            }
            return value(std::move(out));
        };
        f["trim"] = [](context&, value& v, call_args& a) {
            value chars = a.get(0, "chars", value::none());
            return value(py_strip(soft_str(v), chars.is_string() ? &chars.as_string() : nullptr, true, true));
        };
        f["truncate"] = [](context&, value& v, call_args& a) {
            auto u = to_u32(soft_str(v));
            int64_t length = int_arg(a, 0, "length", 255);
            bool killwords = a.get(1, "killwords", value(false)).truthy();
            auto end = to_u32(a.get(2, "end", value("...")).str());
            int64_t leeway = int_arg(a, 3, "leeway", 5);
            if (static_cast<int64_t>(u.size()) <= length + leeway) return value(from_u32(u));
            int64_t keep = std::max<int64_t>(0, length - static_cast<int64_t>(end.size()));
            std::u32string head = u.substr(0, static_cast<size_t>(keep));
            if (!killwords) {
                size_t sp = head.rfind(U' ');
                if (sp != std::u32string::npos) head.resize(sp);
            }
            return value(from_u32(head + end));
        };
        f["unique"] = [](context&, value& v, call_args& a) {
            bool cs = a.get(0, "case_sensitive", value(false)).truthy();
            value attr = a.get(1, "attribute", value::none());
            value_list out, seen;
            for (const auto& x : v.iterate()) {
                value k = sort_key(attr.is_none() ? x : attr_path(x, attr.str()), cs);
                bool dup = std::any_of(seen.begin(), seen.end(), [&](const value& s) { return values_equal(s, k); });
                if (!dup) {
                    seen.push_back(k);
                    out.push_back(x);
                }
            }
            return value::make_list(std::move(out));
        };
        f["wordcount"] = [](context&, value& v, call_args&) { return value(word_count(soft_str(v))); };
        return f;
    }();
    return table;
}

bool is_sameas(const value& a, const value& b) {
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case value::kind::list: return &a.list() == &b.list();
        case value::kind::dict: return &a.dict() == &b.dict();
        case value::kind::function: return &a.function() == &b.function();
        default: return values_equal(a, b);
    }
}

const std::map<std::string, test_fn>& tests() {
    static const std::map<std::string, test_fn> table = [] {
        std::map<std::string, test_fn> t;
        auto arg = [](call_args& a) { return a.get(0, "other"); };
        t["defined"] = [](context&, const value& v, call_args&) { return !v.is_undefined(); };
        t["undefined"] = [](context&, const value& v, call_args&) { return v.is_undefined(); };
        t["none"] = [](context&, const value& v, call_args&) { return v.is_none(); };
        t["boolean"] = [](context&, const value& v, call_args&) { return v.is_bool(); };
        t["true"] = [](context&, const value& v, call_args&) { return v.is_bool() && v.as_bool(); };
        t["false"] = [](context&, const value& v, call_args&) { return v.is_bool() && !v.as_bool(); };
        t["integer"] = [](context&, const value& v, call_args&) { return v.is_int(); };
        t["float"] = [](context&, const value& v, call_args&) { return v.is_float(); };
        t["number"] = [](context&, const value& v, call_args&) { return v.is_number(); };
        t["string"] = [](context&, const value& v, call_args&) { return v.is_string(); };
        t["mapping"] = [](context&, const value& v, call_args&) { return v.is_dict() && !v.dict().is_namespace; };
        t["iterable"] = [](context&, const value& v, call_args&) {
            return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
        };
        t["sequence"] = t["iterable"];
        t["callable"] = [](context&, const value& v, call_args&) { return v.is_function(); };
        t["escaped"] = [](context&, const value&, call_args&) { return false; };
        t["lower"] = [](context&, const value& v, call_args&) { return py_is(v.str(), "islower"); };
        t["upper"] = [](context&, const value& v, call_args&) { return py_is(v.str(), "isupper"); };
        t["odd"] = [](context&, const value& v, call_args&) {
            if (!v.is_int()) throw template_error("odd test needs an integer");
            return (v.as_int() % 2 + 2) % 2 == 1;
        };
        t["even"] = [](context&, const value& v, call_args&) {
            if (!v.is_int()) throw template_error("even test needs an integer");
            return v.as_int() % 2 == 0;
        };
        t["divisibleby"] = [](context&, const value& v, call_args& a) {
            value n = a.get(0, "num");
            if (!n.is_number() || n.as_int() == 0) throw template_error("divisibleby needs a non-zero integer");
            return v.as_int() % n.as_int() == 0;
        };
        t["eq"] = [arg](context&, const value& v, call_args& a) { return values_equal(v, arg(a)); };
        t["ne"] = [arg](context&, const value& v, call_args& a) { return !values_equal(v, arg(a)); };
        t["lt"] = [arg](context&, const value& v, call_args& a) { return value_less(v, arg(a)); };
        t["gt"] = [arg](context&, const value& v, call_args& a) { return value_less(arg(a), v); };
        t["le"] = [arg](context&, const value& v, call_args& a) { return !value_less(arg(a), v); };
        t["ge"] = [arg](context&, const value& v, call_args& a) { return !value_less(v, arg(a)); };
        t["equalto"] = t["=="] = t["eq"];
        t["!="] = t["ne"];
        t["lessthan"] = t["<"] = t["lt"];
        t["greaterthan"] = t[">"] = t["gt"];
        t["<="] = t["le"];
        t[">="] = t["ge"];
        t["sameas"] = [arg](context&, const value& v, call_args& a) { return is_sameas(v, arg(a)); };
        t["in"] = [](context&, const value& v, call_args& a) {
            value seq = a.get(0, "seq");
            if (seq.is_string()) return v.is_string() && seq.as_string().find(v.as_string()) != std::string::npos;
            if (seq.is_dict()) return v.is_string() && seq.dict().find(v.as_string()) != nullptr;
            for (const auto& x : seq.iterate())
                if (values_equal(x, v)) return true;
            return false;
        };
        t["filter"] = [](context&, const value& v, call_args&) { return v.is_string() && has_filter(v.as_string()); };
        t["test"] = [](context&, const value& v, call_args&) { return v.is_string() && has_test(v.as_string()); };
        return t;
    }();
    return table;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) > 0; }
bool has_test(const std::string& name) { return tests().count(name) > 0; }

value apply_filter(context& ctx, const std::string& name, value in, call_args& args) {
    auto it = filters().find(name);
    if (it == filters().end()) throw template_error("No filter named '" + name + "'.");
    ctx.tick();
    return it->second(ctx, in, args);
}

bool apply_test(context& ctx, const std::string& name, const value& in, call_args& args) {
    auto it = tests().find(name);
    if (it == tests().end()) throw template_error("No test named '" + name + "'.");
    return it->second(ctx, in, args);
}

}  // namespace edgellm::jinja
