// UTF-8 helpers for the tokenizers: strict decoding with U+FFFD for invalid bytes, the GPT-2
// byte<->unicode mapping of byte-level BPE, and detection of an incomplete UTF-8 tail.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::unicode {

constexpr uint32_t k_replacement = 0xFFFD;

// Length of the UTF-8 sequence that starts with `lead` judged by its high bits alone
// (1 for continuation bytes), as llama.cpp splits text into characters.
inline size_t utf8_len(uint8_t lead) {
    static constexpr uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

// Decodes one well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF)
// at `pos`. On success stores the code point, advances `pos` and returns true; otherwise
// leaves `pos` unchanged and returns false.
bool decode_utf8(std::string_view s, size_t& pos, uint32_t& cp);

// Code points of `s`; every byte that does not start a well-formed sequence becomes U+FFFD.
std::vector<uint32_t> codepoints(std::string_view s);

// `s` with every invalid byte replaced by U+FFFD (a no-op copy for valid UTF-8).
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

void append_utf8(std::string& out, uint32_t cp);

// GPT-2 byte-level BPE alphabet: every byte maps to one printable code point ("Ġ" for ' ').
const std::string& byte_to_unicode(uint8_t b);
// Inverse mapping; returns -1 when `cp` is not in the alphabet.
int unicode_to_byte(uint32_t cp);

// Number of bytes at the end of `s` that form the beginning of a well-formed but unfinished
// UTF-8 sequence (0..3). A streaming decoder holds these back until the rest arrives.
size_t incomplete_utf8_tail(std::string_view s);

}  // namespace edgellm::unicode
