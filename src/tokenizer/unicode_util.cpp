// UTF-8 decoding/encoding and the GPT-2 byte<->unicode table used by byte-level BPE.
#include "tokenizer/unicode_util.h"

#include <array>

namespace edgellm::unicode {

bool decode_utf8(std::string_view s, size_t& pos, uint32_t& cp) {
    const size_t n = s.size();
    if (pos >= n) return false;
    const auto b0 = static_cast<uint8_t>(s[pos]);
    if (b0 < 0x80) {
        cp = b0;
        ++pos;
        return true;
    }
    size_t len;
    uint32_t c;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
        c = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        c = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;  // overlong
        if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        c = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;  // overlong
        if (b0 == 0xF4) hi = 0x8F;  // beyond U+10FFFF
    } else {
        return false;
    }
    if (pos + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
        const auto b = static_cast<uint8_t>(s[pos + k]);
        const uint8_t l = k == 1 ? lo : 0x80;
        const uint8_t h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) return false;
        c = (c << 6) | (b & 0x3F);
    }
    cp = c;
    pos += len;
    return true;
}

std::vector<uint32_t> codepoints(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t pos = 0;
    while (pos < s.size()) {
        uint32_t cp;
        if (decode_utf8(s, pos, cp)) {
            out.push_back(cp);
        } else {
            out.push_back(k_replacement);
            ++pos;
        }
    }
    return out;
}

bool is_valid_utf8(std::string_view s) {
    size_t pos = 0;
    uint32_t cp;
    while (pos < s.size())
        if (!decode_utf8(s, pos, cp)) return false;
    return true;
}

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    while (pos < s.size()) {
        const size_t start = pos;
        uint32_t cp;
        if (decode_utf8(s, pos, cp)) {
            out.append(s.data() + start, pos - start);
        } else {
            append_utf8(out, k_replacement);
            ++pos;
        }
    }
    return out;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100.. in byte order, so every byte has a visible, non-space stand-in.
struct byte_tables {
    std::array<std::string, 256> to_unicode;
    std::array<int16_t, 0x180> to_byte;
    byte_tables() {
        to_byte.fill(-1);
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
            append_utf8(to_unicode[b], cp);
            to_byte[cp] = static_cast<int16_t>(b);
        }
    }
};

const byte_tables& tables() {
    static const byte_tables t;
    return t;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return tables().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) { return cp < tables().to_byte.size() ? tables().to_byte[cp] : -1; }

size_t incomplete_utf8_tail(std::string_view s) {
    // Look back at most 3 bytes for a lead byte whose sequence runs past the end, and hold it
    // back only if the bytes present so far could still become a well-formed sequence.
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto b0 = static_cast<uint8_t>(s[n - back]);
        if ((b0 & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        size_t need = 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            need = 2;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            need = 3;
            if (b0 == 0xE0) lo = 0xA0;
            if (b0 == 0xED) hi = 0x9F;
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            need = 4;
            if (b0 == 0xF0) lo = 0x90;
            if (b0 == 0xF4) hi = 0x8F;
        }
        if (need <= back) return 0;  // ASCII, an invalid lead, or a complete sequence
        for (size_t k = 1; k < back; ++k) {
            const auto b = static_cast<uint8_t>(s[n - back + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
        }
        return back;
    }
    return 0;
}

}  // namespace edgellm::unicode
