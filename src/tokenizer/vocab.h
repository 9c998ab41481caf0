// The plain vocabulary data a tokenizer is built from (tokens, scores, types, merges, special
// ids, flags), and the one function that fills it from GGUF `tokenizer.ggml.*` metadata.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace edgellm {

namespace gguf {
class file;
}

// Tokenizer families, named after `tokenizer.ggml.model`: llama = SentencePiece BPE,
// gpt2 = byte-level BPE, bert = WordPiece.
enum class vocab_type { spm, bpe, wpm };

// Values of `tokenizer.ggml.token_type` (the numbering llama.cpp and gguf-py use).
enum class token_type : int32_t {
    undefined = 0,
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6,
};

constexpr int32_t k_no_token = -1;

struct vocab {
    vocab_type type = vocab_type::spm;
    std::string model;  // tokenizer.ggml.model as written ("llama", "gpt2", "bert")
    std::string pre;    // tokenizer.ggml.pre ("" when absent)
    std::string name;   // general.name (a few per-model quirks key off it)
    std::string arch;   // general.architecture (likewise)

    std::vector<std::string> tokens;  // [n_vocab] token text (SPM: spaces as U+2581)
    std::vector<float> scores;        // [n_vocab] SPM merge scores; 0 when absent
    std::vector<token_type> types;    // [n_vocab]
    std::vector<std::string> merges;  // BPE merges "left right", best (lowest rank) first

    int32_t bos = k_no_token;
    int32_t eos = k_no_token;
    int32_t eot = k_no_token;
    int32_t eom = k_no_token;
    int32_t unk = k_no_token;
    int32_t sep = k_no_token;
    int32_t pad = k_no_token;
    int32_t mask = k_no_token;

    // Unset flags take the family's default (see vocab_from_gguf).
    bool add_bos = false;
    bool add_eos = false;
    bool add_sep = false;
    bool add_space_prefix = false;  // SPM: prepend one space to the text
    bool remove_extra_whitespaces = false;

    int32_t n_vocab() const { return static_cast<int32_t>(tokens.size()); }
};

// Reads tokenizer.ggml.* from a parsed GGUF (vocab-only files work). Throws edgellm::error
// naming the key when the metadata is missing or inconsistent (e.g. array lengths differ).
vocab vocab_from_gguf(const gguf::file& file);

// Applies the family defaults that llama.cpp uses for flags and special ids (SPM: BOS 1,
// EOS 2, UNK 0, add_bos, space prefix; BERT: [CLS]/[SEP] ...). vocab_from_gguf calls it before
// reading the explicit keys; tests that build a vocab by hand may call it too.
void apply_family_defaults(vocab& v);

}  // namespace edgellm
