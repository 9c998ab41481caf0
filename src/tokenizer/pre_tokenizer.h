// Byte-level BPE pre-tokenizers: the regex lists selected by `tokenizer.ggml.pre`, run with
// PCRE2 (UTF + UCP, JIT) to split text into words before merges are applied.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::tok_detail {

// Properties of a pre-tokenizer family (llama.cpp's LLAMA_VOCAB_PRE_TYPE_* groups).
struct pre_tokenizer_spec {
    std::string name;                  // canonical family name ("gpt2", "llama3", "qwen2", ...)
    std::vector<std::string> regexes;  // applied in order; each splits the pieces of the previous
    bool ignore_merges = false;        // a word that is itself a token skips the merges (llama3)
    bool known = true;                 // false: the `pre` value was not recognised
};

// Looks up the spec for a `tokenizer.ggml.pre` value. Unknown values (and "") give the
// default regexes with known = false; the caller warns.
pre_tokenizer_spec find_pre_tokenizer(std::string_view pre);

// Every `pre` value we recognise (for docs and tests).
std::vector<std::string> known_pre_tokenizers();

// A compiled regex chain. Thread-safe: split() may be called concurrently.
class regex_splitter {
public:
    explicit regex_splitter(const std::vector<std::string>& regexes);
    ~regex_splitter();
    regex_splitter(const regex_splitter&) = delete;
    regex_splitter& operator=(const regex_splitter&) = delete;

    // Splits valid UTF-8 `text` into consecutive pieces covering it entirely: each regex in
    // turn splits every current piece into its matches and the gaps between them. A piece is
    // matched as a subject of its own, so `$` and lookarounds see only that piece (llama.cpp's
    // unicode_regex_split semantics).
    std::vector<std::string_view> split(std::string_view text) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace edgellm::tok_detail
