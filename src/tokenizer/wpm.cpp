// WordPiece (`tokenizer.ggml.model = bert`): BERT-style normalisation with utf8proc (NFD,
// lowercase, accents stripped, punctuation and CJK split off) and greedy longest-match pieces.
#include <utf8proc.h>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode_util.h"

namespace edgellm::tok_detail {

namespace {

// Unicode White_Space, which is what llama.cpp and HF's BERT pre-tokenizer split on.
bool is_whitespace(uint32_t cp) {
    switch (cp) {
        case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
        case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool is_chinese_char(uint32_t cp) {
    // The CJK blocks BERT's tokenizer splits character by character (HF uses 0x2B920 for the
    // start of Extension E; we follow it).
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void nfd_append(uint32_t cp, std::vector<uint32_t>& out) {
    utf8proc_int32_t buf[8];
    utf8proc_int32_t last_boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 8,
                                                       UTF8PROC_DECOMPOSE, &last_boundclass);
    if (n <= 0 || n > 8) {
        out.push_back(cp);
        return;
    }
    for (utf8proc_ssize_t i = 0; i < n; ++i) out.push_back(static_cast<uint32_t>(buf[i]));
}

// Splits normalised text into words: whitespace separates, punctuation / ASCII symbols / CJK
// characters are words of their own, control characters vanish.
std::vector<std::string> wpm_words(std::string_view text) {
    std::vector<uint32_t> cps;
    for (uint32_t cp : unicode::codepoints(text)) nfd_append(cp, cps);
    std::vector<std::string> words(1);
    for (uint32_t cp : cps) {
        if (is_whitespace(cp)) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
        // Unassigned code points (Cn) stay: HF's BERT keeps them, so their word becomes [UNK].
        const bool control = cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
                             cat == UTF8PROC_CATEGORY_CS;
        if (cp == 0 || cp == unicode::k_replacement || control) continue;
        if (cat == UTF8PROC_CATEGORY_MN) continue;  // combining accents, stripped as BERT does
        const bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
        const bool symbol = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
        std::string s;
        unicode::append_utf8(s, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
        if (punct || (cp < 0x7F && symbol) || is_chinese_char(cp)) {
            if (!words.back().empty()) words.emplace_back();
            words.back() = std::move(s);
            words.emplace_back();
        } else {
            words.back() += s;
        }
    }
    if (words.back().empty()) words.pop_back();
    return words;
}

}  // namespace

void tokenizer_impl::encode_wpm(std::string_view text, std::vector<int32_t>& out) const {
    for (const std::string& word : wpm_words(text)) {
        // The GGUF conversion marks word-initial pieces with U+2581 and drops the "##" of
        // continuation pieces, so a word is matched with the marker in front.
        const std::string w = "\xE2\x96\x81" + word;
        const size_t n = w.size();
        const size_t start = out.size();
        bool ok = true;
        for (size_t i = 0; i < n && ok;) {
            ok = false;
            for (size_t j = std::min(n, i + max_token_len_bytes); j > i; --j) {
                const int32_t id = find(std::string_view(w).substr(i, j - i));
                if (id != k_no_token) {
                    out.push_back(id);
                    i = j;
                    ok = true;
                    break;
                }
            }
        }
        if (!ok) {
            out.resize(start);  // a word that cannot be covered becomes a single [UNK]
            if (v.unk != k_no_token) out.push_back(v.unk);
        }
    }
}

}  // namespace edgellm::tok_detail
