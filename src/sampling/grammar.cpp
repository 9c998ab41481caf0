// The GBNF parser: recursive descent over llama.cpp's grammar syntax (grammars/README.md of
// llama.cpp), repetition operators rewritten into generated rules as llama.cpp does, then
// checks (undefined rules, root, left recursion) and flattening for the matcher.
#include "sampling/grammar.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace edgellm::sampling {

bool charset::matches(uint32_t cp) const {
    bool in = false;
    for (const auto& [lo, hi] : ranges)
        if (cp >= lo && cp <= hi) {
            in = true;
            break;
        }
    return in != negated;
}

bool charset::matches_any(uint32_t lo, uint32_t hi) const {
    if (!negated) {
        for (const auto& [a, b] : ranges)
            if (a <= hi && b >= lo) return true;
        return false;
    }
    // Negated: some point of [lo, hi] lies outside every range.
    std::vector<std::pair<uint32_t, uint32_t>> rs = ranges;
    std::sort(rs.begin(), rs.end());
    uint64_t next = lo;  // first point not yet known to be covered
    for (const auto& [a, b] : rs) {
        if (a > next) break;
        if (b >= next) next = static_cast<uint64_t>(b) + 1;
        if (next > hi) return false;
    }
    return next <= hi;
}

namespace {

using seq = std::vector<grammar_element>;

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

class parser {
public:
    explicit parser(std::string_view src) : src_(src) {}

    std::shared_ptr<const grammar> run(std::string_view root_name) {
        skip_space(true);
        while (!eof()) {
            parse_rule();
            skip_space(true);
        }
        for (uint32_t id = 0; id < rules_.size(); ++id)
            if (!defined_[id]) fail(first_use_[id], fmt::format("undefined rule '{}'", names_[id]));
        auto it = ids_.find(std::string(root_name));
        if (it == ids_.end()) throw grammar_error(fmt::format("grammar: no '{}' rule (generation starts from it)", root_name));
        check_left_recursion();
        return flatten(it->second);
    }

private:
    std::string_view src_;
    size_t pos_ = 0;
    int depth_ = 0;
    size_t n_elems_ = 0;
    std::map<std::string, uint32_t> ids_;
    std::vector<std::string> names_;
    std::vector<bool> defined_;
    std::vector<size_t> first_use_;  // offset of the first reference (or the definition)
    std::vector<std::vector<seq>> rules_;
    std::vector<charset> charsets_;

    bool eof() const { return pos_ >= src_.size(); }
    char peek(size_t ahead = 0) const { return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0'; }

    [[noreturn]] void fail(size_t at, const std::string& what) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < src_.size(); ++i) {
            if (src_[i] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        throw grammar_error(fmt::format("grammar:{}:{}: {}", line, col, what));
    }

    void skip_space(bool newline_ok) {
        while (!eof()) {
            const char c = peek();
            if (c == ' ' || c == '\t') {
                ++pos_;
            } else if ((c == '\n' || c == '\r') && newline_ok) {
                ++pos_;
            } else if (c == '#') {
                while (!eof() && peek() != '\n' && peek() != '\r') ++pos_;
            } else {
                break;
            }
        }
    }

    uint32_t rule_id(const std::string& name, size_t at) {
        auto [it, added] = ids_.emplace(name, static_cast<uint32_t>(rules_.size()));
        if (added) {
            names_.push_back(name);
            defined_.push_back(false);
            first_use_.push_back(at);
            rules_.emplace_back();
        }
        return it->second;
    }

    uint32_t new_rule(const std::string& base) {
        for (size_t n = names_.size();; ++n) {
            const std::string name = fmt::format("{}_{}", base, n);
            if (ids_.count(name)) continue;
            const uint32_t id = rule_id(name, pos_);
            defined_[id] = true;
            return id;
        }
    }

    void count(size_t n) {
        n_elems_ += n;
        if (n_elems_ > k_grammar_max_elements)
            fail(pos_, fmt::format("grammar too large (more than {} elements after expanding repetitions)",
                                   k_grammar_max_elements));
    }

    std::string parse_name() {
        const size_t start = pos_;
        while (!eof() && is_word_char(peek())) ++pos_;
        if (pos_ == start) fail(start, eof() ? "expected a rule name, got the end of the input"
                                             : fmt::format("expected a rule name, got '{}'", peek()));
        return std::string(src_.substr(start, pos_ - start));
    }

    uint32_t parse_hex(int n_digits) {
        uint32_t v = 0;
        for (int i = 0; i < n_digits; ++i) {
            const char c = peek();
            int d = -1;
            if (c >= '0' && c <= '9') d = c - '0';
            if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            if (d < 0) fail(pos_, fmt::format("expected {} hex digits", n_digits));
            v = v * 16 + static_cast<uint32_t>(d);
            ++pos_;
        }
        return v;
    }

    // One (possibly escaped) code point of a literal or a character class.
    uint32_t parse_char() {
        if (eof()) fail(pos_, "unexpected end of the input");
        const auto c = static_cast<unsigned char>(peek());
        if (c == '\\') {
            const size_t at = pos_;
            ++pos_;
            const char e = peek();
            ++pos_;
            switch (e) {
                case 'x': return parse_hex(2);
                case 'u': return parse_hex(4);
                case 'U': return parse_hex(8);
                case 't': return '\t';
                case 'n': return '\n';
                case 'r': return '\r';
                case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'':
                    return static_cast<uint32_t>(e);
                default: fail(at, e ? fmt::format("unknown escape '\\{}'", e) : "unexpected end of the input");
            }
        }
        // UTF-8
        int n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || pos_ + static_cast<size_t>(n) > src_.size()) fail(pos_, "invalid UTF-8 in the grammar");
        uint32_t cp = n == 1 ? c : c & (0x7F >> n);
        for (int i = 1; i < n; ++i) {
            const auto b = static_cast<unsigned char>(src_[pos_ + static_cast<size_t>(i)]);
            if ((b & 0xC0) != 0x80) fail(pos_, "invalid UTF-8 in the grammar");
            cp = (cp << 6) | (b & 0x3F);
        }
        pos_ += static_cast<size_t>(n);
        return cp;
    }

    grammar_element chars(charset cs) {
        charsets_.push_back(std::move(cs));
        return {grammar_element::kind::chars, static_cast<uint32_t>(charsets_.size() - 1)};
    }

    uint32_t parse_count() {
        const size_t start = pos_;
        uint64_t v = 0;
        while (peek() >= '0' && peek() <= '9') {
            v = v * 10 + static_cast<uint64_t>(peek() - '0');
            if (v > k_grammar_max_repeat) fail(start, fmt::format("repetition count above the limit of {}", k_grammar_max_repeat));
            ++pos_;
        }
        if (pos_ == start) fail(start, "expected a number");
        return static_cast<uint32_t>(v);
    }

    // Replaces seq[last..] by its repetition min..max times (max < 0: unbounded).
    void repeat(seq& s, size_t last, const std::string& rule_name, uint32_t min, int64_t max) {
        seq item(s.begin() + static_cast<std::ptrdiff_t>(last), s.end());
        s.resize(last);
        if (item.size() != 1) {
            const uint32_t r = new_rule(rule_name);
            rules_[r] = {item};
            item = {{grammar_element::kind::ref, r}};
        }
        count(static_cast<size_t>(min) + (max > 0 ? static_cast<size_t>(max) : 1) * 2);
        for (uint32_t i = 0; i < min; ++i) s.push_back(item[0]);
        if (max < 0) {
            const uint32_t star = new_rule(rule_name);
            rules_[star] = {{item[0], {grammar_element::kind::ref, star}}, {}};
            s.push_back({grammar_element::kind::ref, star});
            return;
        }
        int64_t prev = -1;
        for (int64_t k = min; k < max; ++k) {
            const uint32_t r = new_rule(rule_name);
            seq alt = {item[0]};
            if (prev >= 0) alt.push_back({grammar_element::kind::ref, static_cast<uint32_t>(prev)});
            rules_[r] = {alt, {}};
            prev = r;
        }
        if (prev >= 0) s.push_back({grammar_element::kind::ref, static_cast<uint32_t>(prev)});
    }

    seq parse_sequence(const std::string& rule_name, bool nested) {
        seq s;
        size_t last = s.size();
        bool have_last = false;
        while (!eof()) {
            const size_t at = pos_;
            const char c = peek();
            if (c == '"') {
                ++pos_;
                last = s.size();
                have_last = true;
                while (peek() != '"') {
                    if (eof() || peek() == '\n') fail(at, "unterminated string literal");
                    const uint32_t cp = parse_char();
                    s.push_back(chars({false, {{cp, cp}}}));
                    count(1);
                }
                ++pos_;
                if (s.size() == last) have_last = false;  // "" matches the empty string
            } else if (c == '[') {
                ++pos_;
                charset cs;
                if (peek() == '^') {
                    cs.negated = true;
                    ++pos_;
                }
                while (peek() != ']') {
                    if (eof()) fail(at, "unterminated character class");
                    const uint32_t lo = parse_char();
                    uint32_t hi = lo;
                    if (peek() == '-' && peek(1) != ']' && pos_ + 1 < src_.size()) {
                        ++pos_;
                        const size_t hi_at = pos_;
                        hi = parse_char();
                        if (hi < lo) fail(hi_at, "character range end is before its start");
                    }
                    cs.ranges.push_back({lo, hi});
                }
                ++pos_;
                last = s.size();
                have_last = true;
                s.push_back(chars(std::move(cs)));
                count(1);
            } else if (c == '.') {
                ++pos_;
                last = s.size();
                have_last = true;
                s.push_back(chars({true, {}}));
                count(1);
            } else if (is_word_char(c)) {
                const std::string name = parse_name();
                last = s.size();
                have_last = true;
                s.push_back({grammar_element::kind::ref, rule_id(name, at)});
                count(1);
            } else if (c == '(') {
                ++pos_;
                if (++depth_ > k_grammar_max_nesting)
                    fail(at, fmt::format("parentheses nested deeper than {}", k_grammar_max_nesting));
                skip_space(true);
                const uint32_t sub = new_rule(rule_name);
                std::vector<seq> alts = parse_alternates(rule_name, true);
                if (peek() != ')') fail(pos_, "expected ')'");
                ++pos_;
                --depth_;
                rules_[sub] = std::move(alts);
                last = s.size();
                have_last = true;
                s.push_back({grammar_element::kind::ref, sub});
                count(1);
            } else if (c == '*' || c == '+' || c == '?' || c == '{') {
                if (!have_last) fail(at, fmt::format("expected an item before '{}'", c));
                ++pos_;
                if (c == '*') repeat(s, last, rule_name, 0, -1);
                if (c == '+') repeat(s, last, rule_name, 1, -1);
                if (c == '?') repeat(s, last, rule_name, 0, 1);
                if (c == '{') {
                    skip_space(false);
                    const uint32_t min = parse_count();
                    int64_t max = min;
                    skip_space(false);
                    if (peek() == ',') {
                        ++pos_;
                        skip_space(false);
                        max = peek() == '}' ? -1 : static_cast<int64_t>(parse_count());
                        skip_space(false);
                    }
                    if (peek() != '}') fail(pos_, "expected '}' closing the repetition count");
                    ++pos_;
                    if (max >= 0 && max < min) fail(at, "repetition {m,n} with n < m");
                    repeat(s, last, rule_name, min, max);
                }
                have_last = false;
            } else {
                break;
            }
            skip_space(nested);
        }
        return s;
    }

    std::vector<seq> parse_alternates(const std::string& rule_name, bool nested) {
        std::vector<seq> alts;
        alts.push_back(parse_sequence(rule_name, nested));
        while (peek() == '|') {
            ++pos_;
            skip_space(true);
            alts.push_back(parse_sequence(rule_name, nested));
        }
        return alts;
    }

    void parse_rule() {
        const size_t at = pos_;
        const std::string name = parse_name();
        skip_space(false);
        if (src_.substr(pos_, 3) != "::=") fail(pos_, "expected '::='");
        pos_ += 3;
        skip_space(true);
        const uint32_t id = rule_id(name, at);
        if (defined_[id]) fail(at, fmt::format("rule '{}' is defined twice", name));
        defined_[id] = true;
        first_use_[id] = at;
        std::vector<seq> alts = parse_alternates(name, false);
        rules_[id] = std::move(alts);
        if (peek() == '\r') ++pos_;
        if (peek() == '\n') {
            ++pos_;
        } else if (!eof()) {
            fail(pos_, fmt::format("unexpected '{}'", peek()));
        }
    }

    // A pushdown matcher loops forever on left recursion (a rule reaching itself before
    // consuming a character), so it is refused here, as llama.cpp does.
    void check_left_recursion() const {
        const size_t n = rules_.size();
        std::vector<bool> nullable(n, false);
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r) {
                if (nullable[r]) continue;
                for (const seq& alt : rules_[r]) {
                    bool all = true;
                    for (const grammar_element& e : alt)
                        if (e.k == grammar_element::kind::chars || !nullable[e.value]) {
                            all = false;
                            break;
                        }
                    if (all) {
                        nullable[r] = changed = true;
                        break;
                    }
                }
            }
        }
        std::vector<std::vector<uint32_t>> edges(n);
        for (size_t r = 0; r < n; ++r)
            for (const seq& alt : rules_[r])
                for (const grammar_element& e : alt) {
                    if (e.k == grammar_element::kind::chars) break;
                    edges[r].push_back(e.value);
                    if (!nullable[e.value]) break;
                }
        // Iterative DFS (a long chain of rules must not overflow the call stack).
        std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
        for (size_t start = 0; start < n; ++start) {
            if (color[start]) continue;
            std::vector<std::pair<uint32_t, size_t>> path = {{static_cast<uint32_t>(start), 0}};
            color[start] = 1;
            while (!path.empty()) {
                auto& [r, i] = path.back();
                if (i == edges[r].size()) {
                    color[r] = 2;
                    path.pop_back();
                    continue;
                }
                const uint32_t next = edges[r][i++];
                if (color[next] == 1)
                    fail(first_use_[next], fmt::format("rule '{}' is left-recursive (it can reach itself before "
                                                       "matching any character)", names_[next]));
                if (color[next] == 0) {
                    color[next] = 1;
                    path.push_back({next, 0});
                }
            }
        }
    }

    std::shared_ptr<const grammar> flatten(uint32_t root) {
        auto g = std::make_shared<grammar>();
        g->root = root;
        g->rule_names = names_;
        g->charsets = std::move(charsets_);
        g->rule_alts.resize(rules_.size());
        for (size_t r = 0; r < rules_.size(); ++r)
            for (const seq& alt : rules_[r]) {
                g->rule_alts[r].push_back(static_cast<uint32_t>(g->elems.size()));
                g->elems.insert(g->elems.end(), alt.begin(), alt.end());
                g->elems.push_back({grammar_element::kind::end, 0});
            }
        return g;
    }
};

}  // namespace

std::shared_ptr<const grammar> parse_grammar(std::string_view text, std::string_view root) {
    return parser(text).run(root);
}

}  // namespace edgellm::sampling
