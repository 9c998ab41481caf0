// Internal state shared by the tokenizer front end (tokenizer.cpp) and the three algorithms
// (spm.cpp, bpe.cpp, wpm.cpp). Not part of the public API.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocab.h"

namespace edgellm::tok_detail {

struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

struct tokenizer_impl {
    vocab v;
    string_map<int32_t> token_to_id;
    size_t max_token_len_bytes = 0;

    // Control, user-defined and unknown tokens, longest text first: the order in which the
    // input is searched for them, so the longest special text wins.
    std::vector<int32_t> special_tokens;
    std::vector<uint8_t> rstrip;  // [n_vocab] 1: whitespace after this special token is dropped
    std::vector<uint8_t> lstrip;  // [n_vocab] 1: whitespace before it is dropped
    std::unordered_set<int32_t> eog;
    std::vector<std::string> pieces;  // [n_vocab] token_to_piece(id, render_special = true)

    // SPM
    std::array<int32_t, 256> byte_token{};  // <0xNN> (or the 1-byte token) for each byte; -1 none
    // True when no token contains U+2581 right after another character: then no merge can
    // cross the start of a "▁word", and words can be merged independently (same result, faster).
    bool spm_split_at_spaces = false;

    // BPE
    pre_tokenizer_spec pre;
    std::unique_ptr<regex_splitter> splitter;
    struct merge_result {
        int32_t rank;
        int32_t id;  // token of the merged pair
    };
    std::unordered_map<uint64_t, merge_result> merges;  // key: (left id << 32) | right id
    std::array<int32_t, 256> bpe_byte_token{};          // token of each byte's unicode stand-in
    mutable std::mutex cache_mutex;
    mutable string_map<std::vector<int32_t>> word_cache;  // pre-tokenized word -> ids

    int32_t find(std::string_view text) const {
        auto it = token_to_id.find(text);
        return it == token_to_id.end() ? k_no_token : it->second;
    }
    token_type type_of(int32_t id) const { return v.types[static_cast<size_t>(id)]; }
    bool is_control_or_unknown(int32_t id) const {
        const token_type t = type_of(id);
        return t == token_type::control || t == token_type::unknown;
    }

    void init();
    void init_spm();
    void init_bpe();
    std::string make_piece(int32_t id) const;

    // Tokenize one fragment of plain text (no special tokens in it) and append the ids.
    void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
    void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
    void encode_wpm(std::string_view text, std::vector<int32_t>& out) const;
    void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
};

}  // namespace edgellm::tok_detail
