// Jinja2 lexer. Mirrors jinja2/lexer.py: the root state finds the next {{ {% {# tag, the tag
// states tokenize expressions until the (bracket-balanced) end of the tag.
#include "chat/jinja_lexer.h"

#include <algorithm>
#include <cctype>

#include "chat/jinja_value.h"

namespace edgellm::jinja {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class lexer {
public:
    lexer(std::string src, const lexer_options& opts) : src_(std::move(src)), opts_(opts) {
        for (size_t i = 0; i < src_.size(); ++i)
            if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }

    std::vector<token> run() {
        while (pos_ < src_.size()) {
            size_t tag = find_tag(pos_);
            bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
            if (tag == std::string::npos) {
                emit_text(pos_, src_.substr(pos_));
                pos_ = src_.size();
                break;
            }
            char kind = src_[tag + 1];
            size_t q = tag + 2;
            char sign = 0;
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
            std::string text = src_.substr(pos_, tag - pos_);
            if (sign == '-') {
                while (!text.empty() && is_space(text.back())) text.pop_back();
            } else if (sign != '+' && opts_.lstrip_blocks && kind != '{') {
                size_t nl = text.rfind('\n');
                size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
                if (l_pos > 0 || line_starting) {
                    bool only_ws = std::all_of(text.begin() + l_pos, text.end(),
                                               [](char c) { return c == ' ' || c == '\t'; });
                    if (only_ws) text.resize(l_pos);
                }
            }
            emit_text(pos_, std::move(text));
            pos_ = q;
            if (kind == '#') {
                lex_comment(tag);
            } else if (kind == '%' && try_raw(tag)) {
                continue;
            } else {
                lex_tag(tag, kind);
            }
        }
        tokens_.push_back({token_kind::eof, "", 0, 0, line_of(src_.size()), col_of(src_.size())});
        return std::move(tokens_);
    }

private:
    std::string src_;
    lexer_options opts_;
    size_t pos_ = 0;
    std::vector<size_t> line_starts_{0};
    std::vector<token> tokens_;

    int line_of(size_t p) const {
        auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), p);
        return static_cast<int>(it - line_starts_.begin());
    }
    int col_of(size_t p) const { return static_cast<int>(p - line_starts_[line_of(p) - 1]) + 1; }

    [[noreturn]] void fail(size_t p, const std::string& msg) const {
        throw template_error("template syntax error at line " + std::to_string(line_of(p)) +
                             ", column " + std::to_string(col_of(p)) + ": " + msg);
    }

    size_t find_tag(size_t from) const {
        for (size_t i = from; i + 1 < src_.size(); ++i)
            if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
                return i;
        return std::string::npos;
    }

    void push(token_kind k, std::string text, size_t at) {
        tokens_.push_back({k, std::move(text), 0, 0, line_of(at), col_of(at)});
    }

    void emit_text(size_t at, std::string text) {
        if (!text.empty()) push(token_kind::text, std::move(text), at);
    }

    void skip_ws() {
        while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    }

    bool starts_with(size_t p, const char* s) const { return src_.compare(p, std::char_traits<char>::length(s), s) == 0; }

    // After a block or comment end: `-` strips all following whitespace, trim_blocks one newline.
    void after_block_end(bool strip) {
        if (strip) {
            skip_ws();
        } else if (opts_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
            ++pos_;
        }
    }

    void lex_comment(size_t tag) {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) fail(tag, "missing end of comment tag");
        bool strip = end > pos_ && src_[end - 1] == '-';
        bool keep = end > pos_ && src_[end - 1] == '+';
        pos_ = end + 2;
        if (!keep) after_block_end(strip);
    }

    // {% raw %}...{% endraw %}: everything in between is text.
    bool try_raw(size_t tag) {
        size_t p = pos_;
        while (p < src_.size() && is_space(src_[p])) ++p;
        if (!starts_with(p, "raw")) return false;
        p += 3;
        while (p < src_.size() && is_space(src_[p])) ++p;
        bool strip_after = false;
        if (p < src_.size() && src_[p] == '-') {
            strip_after = true;
            ++p;
        }
        if (!starts_with(p, "%}")) return false;
        pos_ = p + 2;
        if (strip_after) skip_ws();
        size_t body = pos_;
        for (size_t i = body; i + 1 < src_.size(); ++i) {
            if (!starts_with(i, "{%")) continue;
            size_t k = i + 2;
            bool strip_before = k < src_.size() && src_[k] == '-';
            if (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) ++k;
            while (k < src_.size() && is_space(src_[k])) ++k;
            if (!starts_with(k, "endraw")) continue;
            k += 6;
            while (k < src_.size() && is_space(src_[k])) ++k;
            bool strip = k < src_.size() && src_[k] == '-';
            if (strip) ++k;
            if (!starts_with(k, "%}")) continue;
            std::string text = src_.substr(body, i - body);
            if (strip_before)
                while (!text.empty() && is_space(text.back())) text.pop_back();
            emit_text(body, std::move(text));
            pos_ = k + 2;
            after_block_end(strip);
            return true;
        }
        fail(tag, "missing end of raw directive");
    }

    void lex_tag(size_t tag, char kind) {
        push(kind == '{' ? token_kind::var_begin : token_kind::block_begin, "", tag);
        int balance = 0;
        while (true) {
            skip_ws();
            if (pos_ >= src_.size())
                fail(tag, kind == '{' ? "unexpected end of template, expected '}}'"
                                      : "unexpected end of template, expected '%}'");
            size_t at = pos_;
            if (balance == 0) {
                if (kind == '%') {
                    if (starts_with(pos_, "-%}") || starts_with(pos_, "+%}") || starts_with(pos_, "%}")) {
                        char c = src_[pos_];
                        pos_ += c == '%' ? 2 : 3;
                        push(token_kind::block_end, "", at);
                        if (c == '+') return;
                        after_block_end(c == '-');
                        return;
                    }
                } else if (starts_with(pos_, "-}}") || starts_with(pos_, "}}")) {
                    bool strip = src_[pos_] == '-';
                    pos_ += strip ? 3 : 2;
                    push(token_kind::var_end, "", at);
                    if (strip) skip_ws();
                    return;
                }
            }
            char c = src_[pos_];
            if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
                size_t e = pos_;
                while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
                push(token_kind::name, src_.substr(pos_, e - pos_), at);
                pos_ = e;
            } else if (std::isdigit(static_cast<unsigned char>(c))) {
                lex_number(at);
            } else if (c == '\'' || c == '"') {
                lex_string(at);
            } else {
                static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
                std::string op;
                for (const char* t : two)
                    if (starts_with(pos_, t)) op = t;
                if (op.empty()) {
                    if (std::string("+-*/%~<>=()[]{},.:|;").find(c) == std::string::npos)
                        fail(at, std::string("unexpected char '") + c + "'");
                    op = std::string(1, c);
                }
                if (op == "(" || op == "[" || op == "{") ++balance;
                if ((op == ")" || op == "]" || op == "}") && balance > 0) --balance;
                pos_ += op.size();
                push(token_kind::op, op, at);
            }
        }
    }

    void lex_number(size_t at) {
        auto digits = [&](size_t p) {
            std::string d;
            while (p < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) {
                if (src_[p] != '_') d += src_[p];
                ++p;
            }
            return std::pair{d, p};
        };
        auto [ip, p] = digits(pos_);
        std::string num = ip;
        bool is_float = false;
        if (p + 1 < src_.size() && src_[p] == '.' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
            auto [fp, p2] = digits(p + 1);
            num += "." + fp;
            p = p2;
            is_float = true;
        }
        if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
            size_t e = p + 1;
            std::string sign;
            if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) sign = src_[e++];
            if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
                auto [ep, p3] = digits(e);
                num += "e" + sign + ep;
                p = p3;
                is_float = true;
            }
        }
        token t{is_float ? token_kind::floating : token_kind::integer, num, 0, 0, line_of(at), col_of(at)};
        try {
            if (is_float) t.float_value = std::stod(num);
            else t.int_value = std::stoll(num);
        } catch (const std::exception&) {
            fail(at, "number literal out of range: " + num);
        }
        tokens_.push_back(std::move(t));
        pos_ = p;
    }

    void lex_string(size_t at) {
        char quote = src_[pos_];
        size_t p = pos_ + 1;
        std::string out;
        while (true) {
            if (p >= src_.size()) fail(at, "unterminated string literal");
            char c = src_[p];
            if (c == quote) break;
            if (c != '\\') {
                out += c;
                ++p;
                continue;
            }
            if (p + 1 >= src_.size()) fail(at, "unterminated string literal");
            char e = src_[p + 1];
            p += 2;
            auto hex = [&](int n) -> uint32_t {
                if (p + n > src_.size()) fail(at, "truncated \\x/\\u escape in string literal");
                uint32_t v = 0;
                for (int i = 0; i < n; ++i) {
                    char h = src_[p + i];
                    if (!std::isxdigit(static_cast<unsigned char>(h))) fail(at, "bad hex escape in string literal");
                    v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
                }
                p += n;
                return v;
            };
            switch (e) {
                case '\n': break;
                case '\\': out += '\\'; break;
                case '\'': out += '\''; break;
                case '"': out += '"'; break;
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'v': out += '\v'; break;
                case 'a': out += '\a'; break;
                case 'x': append_utf8(out, hex(2)); break;
                case 'u': append_utf8(out, hex(4)); break;
                case 'U': append_utf8(out, hex(8)); break;
                default:
                    if (e >= '0' && e <= '7') {
                        uint32_t v = e - '0';
                        for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i)
                            v = v * 8 + (src_[p++] - '0');
                        append_utf8(out, v);
                    } else {
                        out += '\\';
                        out += e;
                    }
            }
        }
        pos_ = p + 1;
        push(token_kind::string, std::move(out), at);
    }
};

std::string normalize_source(const std::string& source, const lexer_options& opts) {
    std::string s;
    s.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            s += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            s += source[i];
        }
    }
    if (!opts.keep_trailing_newline && !s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

}  // namespace

std::vector<token> tokenize(const std::string& source, const lexer_options& opts) {
    return lexer(normalize_source(source, opts), opts).run();
}

}  // namespace edgellm::jinja
