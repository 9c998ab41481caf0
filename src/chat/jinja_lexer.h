// Jinja2 lexer: splits a template into text and tag tokens, applying jinja2's whitespace
// control ({%- -%}, trim_blocks, lstrip_blocks) exactly as jinja2's own lexer does.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace edgellm::jinja {

struct lexer_options {
    bool trim_blocks = true;    // drop the first newline after a block or comment tag
    bool lstrip_blocks = true;  // drop spaces/tabs before a block or comment tag at line start
    bool keep_trailing_newline = false;
};

enum class token_kind {
    text,
    var_begin,
    var_end,
    block_begin,
    block_end,
    name,
    string,
    integer,
    floating,
    op,  // operators and punctuation: + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
    eof,
};

struct token {
    token_kind kind;
    std::string text;  // text content, name, decoded string literal or operator
    int64_t int_value = 0;
    double float_value = 0;
    int line = 1;
    int column = 1;
};

// Tokenizes `source`; throws template_error with line/column on malformed input.
std::vector<token> tokenize(const std::string& source, const lexer_options& opts = {});

}  // namespace edgellm::jinja
