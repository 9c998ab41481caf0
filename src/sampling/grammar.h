// GBNF grammars (llama.cpp's format: rules, alternation, grouping, * + ? {m,n}, character
// classes, string literals, comments) parsed into flat rules a pushdown matcher walks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace edgellm::sampling {

// A set of Unicode code points: inclusive ranges, optionally negated ([^...]).
struct charset {
    bool negated = false;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    bool matches(uint32_t cp) const;
    // Whether some code point in [lo, hi] matches (a token that ends inside a UTF-8 sequence).
    bool matches_any(uint32_t lo, uint32_t hi) const;
};

// One element of a rule alternative: a terminal (one code point from a charset), a reference
// to a rule, or the end of the alternative.
struct grammar_element {
    enum class kind : uint8_t { end, ref, chars };
    kind k = kind::end;
    uint32_t value = 0;  // ref: rule id; chars: index into grammar::charsets
};

// Every alternative of every rule, flattened: a position in `elems` is what a matcher stack holds.
struct grammar {
    std::vector<grammar_element> elems;            // alternatives, each closed by an end element
    std::vector<std::vector<uint32_t>> rule_alts;  // [rule] -> start of each alternative in elems
    std::vector<std::string> rule_names;           // [rule] -> its name (generated ones: "name_3")
    std::vector<charset> charsets;
    uint32_t root = 0;
};

// A grammar the parser refused: the message is "grammar:LINE:COL: what is wrong".
class grammar_error : public usage_error {
public:
    using usage_error::usage_error;
};

// Limits that keep a hostile grammar from exhausting the stack or memory.
constexpr int k_grammar_max_nesting = 128;       // nested parentheses
constexpr uint32_t k_grammar_max_repeat = 1000;  // m and n of {m,n}
constexpr size_t k_grammar_max_elements = 1 << 20;

// Parses GBNF text. Throws grammar_error naming line and column for a syntax error, an
// undefined rule, a missing root rule, left recursion (which a pushdown matcher cannot run) or
// a grammar over the size limits.
std::shared_ptr<const grammar> parse_grammar(std::string_view text, std::string_view root = "root");

}  // namespace edgellm::sampling
