// Python str methods on UTF-8 text, matching CPython where chat templates can observe it.
#include "chat/jinja_strings.h"

#include <utf8proc.h>

#include <cctype>
#include <cstdio>

namespace edgellm::jinja {

std::u32string to_u32(const std::string& s) {
    std::u32string out;
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0) {  // invalid byte: keep it as U+FFFD rather than failing the render
            cp = 0xFFFD;
            n = 1;
        }
        out.push_back(static_cast<char32_t>(cp));
        p += n;
        left -= n;
    }
    return out;
}

std::string from_u32(const std::u32string& s) {
    std::string out;
    for (char32_t c : s) {
        utf8proc_uint8_t buf[4];
        utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
        out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    }
    return out;
}

bool py_isspace(char32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85) return true;
    if (c < 0x80) return false;
    auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

static bool is_cased(char32_t c) {
    auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
static char32_t up(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
static char32_t low(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }

std::string py_strip(const std::string& s, const std::string* chars, bool left, bool right) {
    std::u32string u = to_u32(s);
    std::u32string set = chars ? to_u32(*chars) : std::u32string();
    auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
    size_t b = 0, e = u.size();
    if (left)
        while (b < e && strip_it(u[b])) ++b;
    if (right)
        while (e > b && strip_it(u[e - 1])) --e;
    return from_u32(u.substr(b, e - b));
}

std::vector<std::string> py_split(const std::string& s, const std::string* sep, int64_t maxsplit, bool from_right) {
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty()) throw template_error("empty separator");
        if (!from_right) {
            size_t pos = 0;
            while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
                size_t hit = s.find(*sep, pos);
                if (hit == std::string::npos) break;
                out.push_back(s.substr(pos, hit - pos));
                pos = hit + sep->size();
            }
            out.push_back(s.substr(pos));
        } else {
            size_t end = s.size();
            std::vector<std::string> rev;
            while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
                if (end < sep->size()) break;
                size_t hit = s.rfind(*sep, end - sep->size());
                if (hit == std::string::npos) break;
                rev.push_back(s.substr(hit + sep->size(), end - hit - sep->size()));
                end = hit;
            }
            out.push_back(s.substr(0, end));
            out.insert(out.end(), rev.rbegin(), rev.rend());
        }
        return out;
    }
    // Whitespace split: runs of whitespace separate, no empty strings.
    std::u32string u = to_u32(s);
    if (!from_right) {
        size_t i = 0;
        while (true) {
            while (i < u.size() && py_isspace(u[i])) ++i;
            if (i >= u.size()) break;
            if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
                size_t e = u.size();
                while (e > i && py_isspace(u[e - 1])) --e;
                out.push_back(from_u32(u.substr(i, e - i)));
                break;
            }
            size_t j = i;
            while (j < u.size() && !py_isspace(u[j])) ++j;
            out.push_back(from_u32(u.substr(i, j - i)));
            i = j;
        }
        return out;
    }
    std::vector<std::string> rev;
    int64_t i = static_cast<int64_t>(u.size());
    while (true) {
        while (i > 0 && py_isspace(u[i - 1])) --i;
        if (i <= 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) >= maxsplit) {
            size_t b = 0;
            while (b < static_cast<size_t>(i) && py_isspace(u[b])) ++b;
            rev.push_back(from_u32(u.substr(b, i - b)));
            break;
        }
        int64_t j = i;
        while (j > 0 && !py_isspace(u[j - 1])) --j;
        rev.push_back(from_u32(u.substr(j, i - j)));
        i = j;
    }
    out.assign(rev.rbegin(), rev.rend());
    return out;
}

std::vector<std::string> py_splitlines(const std::string& s) {
    std::vector<std::string> out;
    std::u32string u = to_u32(s);
    size_t start = 0;
    for (size_t i = 0; i < u.size(); ++i) {
        char32_t c = u[i];
        bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
                   c == 0x2028 || c == 0x2029;
        if (!brk) continue;
        out.push_back(from_u32(u.substr(start, i - start)));
        if (c == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
        start = i + 1;
    }
    if (start < u.size()) out.push_back(from_u32(u.substr(start)));
    return out;
}

std::string py_upper(const std::string& s) {
    std::u32string u = to_u32(s), out;
    for (char32_t c : u) {
        if (c == U'\u00DF') out += U"SS";  // the one full case mapping common in chat text
        else out += up(c);
    }
    return from_u32(out);
}

std::string py_lower(const std::string& s) {
    std::u32string u = to_u32(s);
    for (auto& c : u) c = low(c);
    return from_u32(u);
}

std::string py_title(const std::string& s) {
    std::u32string u = to_u32(s);
    bool prev_cased = false;
    for (auto& c : u) {
        if (is_cased(c)) {
            c = prev_cased ? low(c) : up(c);
            prev_cased = true;
        } else {
            prev_cased = false;
        }
    }
    return from_u32(u);
}

std::string jinja_title(const std::string& s) {
    std::u32string u = to_u32(s);
    auto is_sep = [](char32_t c) { return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
    bool word_start = true;
    for (auto& c : u) {
        if (is_sep(c)) {
            word_start = true;
            continue;
        }
        c = word_start ? up(c) : low(c);
        word_start = false;
    }
    return from_u32(u);
}

std::string py_capitalize(const std::string& s) {
    std::u32string u = to_u32(s);
    for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? up(u[i]) : low(u[i]);
    return from_u32(u);
}

std::string py_swapcase(const std::string& s) {
    std::u32string u = to_u32(s);
    for (auto& c : u) c = utf8proc_isupper(static_cast<utf8proc_int32_t>(c)) ? low(c) : up(c);
    return from_u32(u);
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    if (from.empty()) {
        // Python inserts `to` around every code point.
        std::string out;
        int64_t n = 0;
        auto chars = utf8_chars(s);
        for (const auto& c : chars) {
            if (count < 0 || n < count) {
                out += to;
                ++n;
            }
            out += c;
        }
        if (count < 0 || n < count) out += to;
        return out;
    }
    std::string out;
    size_t pos = 0;
    int64_t n = 0;
    while (count < 0 || n < count) {
        size_t hit = s.find(from, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out += to;
        pos = hit + from.size();
        ++n;
    }
    out.append(s, pos, std::string::npos);
    return out;
}

int64_t py_count(const std::string& s, const std::string& sub) {
    if (sub.empty()) return static_cast<int64_t>(to_u32(s).size()) + 1;
    int64_t n = 0;
    for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++n;
    return n;
}

int64_t py_find(const std::string& s, const std::string& sub, bool from_right) {
    size_t hit = from_right ? s.rfind(sub) : s.find(sub);
    if (hit == std::string::npos) return -1;
    return static_cast<int64_t>(to_u32(s.substr(0, hit)).size());
}

bool py_is(const std::string& s, const std::string& which) {
    std::u32string u = to_u32(s);
    if (u.empty()) return false;
    if (which == "istitle") {
        bool any_cased = false, prev_cased = false;
        for (char32_t c : u) {
            bool upper = utf8proc_isupper(static_cast<utf8proc_int32_t>(c)) ||
                         utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_LT;
            if (upper) {
                if (prev_cased) return false;
                prev_cased = any_cased = true;
            } else if (is_cased(c)) {
                if (!prev_cased) return false;
                prev_cased = any_cased = true;
            } else {
                prev_cased = false;
            }
        }
        return any_cased;
    }
    if (which == "islower" || which == "isupper") {
        bool any_cased = false;
        for (char32_t c : u) {
            if (!is_cased(c)) continue;
            any_cased = true;
            bool lower = utf8proc_islower(static_cast<utf8proc_int32_t>(c));
            if ((which == "islower") != lower) return false;
        }
        return any_cased;
    }
    for (char32_t c : u) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        bool digit = cat == UTF8PROC_CATEGORY_ND;
        bool alpha = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
                     cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_LO;
        bool ok = which == "isspace" ? py_isspace(c)
                  : which == "isalpha" ? alpha
                  : which == "isalnum" ? alpha || digit || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO
                  : which == "isnumeric" ? digit || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO
                                         : digit;
        if (!ok) return false;
    }
    return true;
}

std::string py_pad(const std::string& s, const std::string& how, int64_t width, const std::string& fill) {
    std::u32string u = to_u32(s);
    int64_t len = static_cast<int64_t>(u.size());
    if (width <= len) return s;
    int64_t marg = width - len;
    if (how == "zfill") {
        std::string pad(static_cast<size_t>(marg), '0');
        if (!s.empty() && (s[0] == '+' || s[0] == '-')) return s.substr(0, 1) + pad + s.substr(1);
        return pad + s;
    }
    std::u32string f = to_u32(fill);
    if (f.size() != 1) throw template_error("The fill character must be exactly one character long");
    int64_t left = how == "rjust" ? marg : how == "ljust" ? 0 : marg / 2 + (marg & width & 1);
    return from_u32(std::u32string(static_cast<size_t>(left), f[0]) + u +
                    std::u32string(static_cast<size_t>(marg - left), f[0]));
}

std::string py_str_format(const std::string& fmt, const call_args& args) {
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        char c = fmt[i];
        if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
        } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
            out += '}';
            ++i;
        } else if (c == '{') {
            size_t end = fmt.find('}', i);
            if (end == std::string::npos) throw template_error("Single '{' encountered in format string");
            std::string field = fmt.substr(i + 1, end - i - 1);
            bool as_repr = false;
            if (field.size() >= 2 && field[field.size() - 2] == '!') {
                as_repr = field.back() == 'r';
                field.resize(field.size() - 2);
            }
            if (field.find(':') != std::string::npos)
                throw template_error("format specs in str.format are not supported: '" + field + "'");
            value v;
            if (field.empty()) {
                if (auto_index >= args.pos.size()) throw template_error("Replacement index out of range");
                v = args.pos[auto_index++];
            } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
                size_t k = std::stoul(field);
                if (k >= args.pos.size()) throw template_error("Replacement index out of range");
                v = args.pos[k];
            } else {
                bool found = false;
                for (const auto& kv : args.kw)
                    if (kv.first == field) {
                        v = kv.second;
                        found = true;
                    }
                if (!found) throw template_error("KeyError: '" + field + "'");
            }
            out += as_repr ? v.repr() : v.str();
            i = end;
        } else if (c == '}') {
            throw template_error("Single '}' encountered in format string");
        } else {
            out += c;
        }
    }
    return out;
}

std::string py_percent_format(const std::string& fmt, const call_args& args, const value* mapping) {
    std::string out;
    size_t next_arg = 0;
    auto take = [&](const std::string& key) -> value {
        if (!key.empty()) {
            if (!mapping) throw template_error("format requires a mapping");
            const value* v = mapping->dict().find(key);
            if (!v) throw template_error("KeyError: '" + key + "'");
            return *v;
        }
        if (next_arg >= args.pos.size()) throw template_error("not enough arguments for format string");
        return args.pos[next_arg++];
    };
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out += fmt[i];
            continue;
        }
        if (++i >= fmt.size()) throw template_error("incomplete format");
        std::string key;
        if (fmt[i] == '(') {
            size_t end = fmt.find(')', i);
            if (end == std::string::npos) throw template_error("incomplete format key");
            key = fmt.substr(i + 1, end - i - 1);
            i = end + 1;
        }
        std::string spec;
        while (i < fmt.size() && std::string("-+ #0123456789.").find(fmt[i]) != std::string::npos) spec += fmt[i++];
        if (i >= fmt.size()) throw template_error("incomplete format");
        char conv = fmt[i];
        if (conv == '%') {
            out += '%';
            continue;
        }
        value v = take(key);
        char buf[512];
        switch (conv) {
            case 's': out += v.str(); break;
            case 'r': out += v.repr(); break;
            case 'd':
            case 'i':
                if (!v.is_number()) throw template_error("%d format: a real number is required, not " + v.type_name());
                std::snprintf(buf, sizeof buf, ("%" + spec + "lld").c_str(), static_cast<long long>(v.as_int()));
                out += buf;
                break;
            case 'f':
            case 'F':
            case 'e':
            case 'g':
                if (!v.is_number()) throw template_error("must be real number, not " + v.type_name());
                std::snprintf(buf, sizeof buf, ("%" + spec + conv).c_str(), v.as_double());
                out += buf;
                break;
            case 'x':
            case 'X':
            case 'o':
                std::snprintf(buf, sizeof buf, ("%" + spec + "ll" + conv).c_str(), static_cast<long long>(v.as_int()));
                out += buf;
                break;
            default: throw template_error(std::string("unsupported format character '") + conv + "'");
        }
    }
    return out;
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

int64_t word_count(const std::string& s) {
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : to_u32(s)) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        bool w = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                 cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
        if (w && !in_word) ++n;
        in_word = w;
    }
    return n;
}

}  // namespace edgellm::jinja
