// Text <-> token ids for GGUF models: SentencePiece BPE (`llama`), byte-level BPE with
// pre-tokenizer regexes (`gpt2`) and WordPiece (`bert`), behaving like llama.cpp's tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace edgellm {

namespace gguf {
class file;
}

namespace tok_detail {
struct tokenizer_impl;
}

class tokenizer {
public:
    // Builds the tokenizer from a model's (or a vocab-only) GGUF; throws edgellm::error with a
    // clear message when the metadata is missing or unsupported. An unknown
    // tokenizer.ggml.pre is a warning and the default pre-tokenizer is used.
    static std::unique_ptr<tokenizer> from_gguf(const gguf::file& file);
    static std::unique_ptr<tokenizer> from_vocab(vocab v);
    ~tokenizer();

    // Text to ids. add_bos: prepend BOS (and append EOS/SEP) when the model's metadata asks
    // for it. parse_special: text of control tokens (e.g. "<|im_start|>") becomes that token;
    // user-defined tokens are always recognised, as in llama.cpp and HF tokenizers.
    // Invalid UTF-8: SPM keeps the bytes (byte-fallback tokens), BPE and WPM see each invalid
    // byte as U+FFFD, as llama.cpp does. Never throws on any input bytes.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

    // Ids to text, the inverse of encode: the space SPM prefixes (at the start and after a
    // special token) is removed again;
    // control/unknown tokens are rendered as their text only with render_special. Ids outside
    // the vocab throw edgellm::error.
    std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

    // The raw bytes of one token (no leading-space removal), possibly an incomplete UTF-8
    // sequence; use incremental_decoder to stream text.
    std::string token_to_piece(int32_t id, bool render_special) const;

    int32_t bos() const;
    int32_t eos() const;
    int32_t eot() const;  // k_no_token when the model has none
    int32_t unk() const;
    bool add_bos() const;  // whether encode(add_bos = true) prepends BOS for this model
    bool is_eog(int32_t id) const;      // end of generation: EOS, EOT, <|im_end|>, ...
    bool is_special(int32_t id) const;  // control / unknown / user-defined
    int32_t n_vocab() const;
    vocab_type type() const;
    const std::string& pre_tokenizer_name() const;  // the regex family used (BPE), else ""
    const vocab& get_vocab() const;
    // Id of a token given its exact text, or k_no_token.
    int32_t find_token(std::string_view text) const;

private:
    explicit tokenizer(std::unique_ptr<tok_detail::tokenizer_impl> impl);
    std::unique_ptr<tok_detail::tokenizer_impl> impl_;
};

// Turns a stream of generated ids into text without ever splitting a multi-byte UTF-8
// character: bytes of an unfinished character are held back until the next token completes
// it. The space the tokenizer prefixed is removed again: SPM adds one at the start and after
// every special token, WordPiece marks every word start; the text of a BPE token is kept.
class incremental_decoder {
public:
    explicit incremental_decoder(const tokenizer& tok, bool render_special = false);
    // Tells the decoder which tokens come before the ones it will be given (e.g. the prompt
    // when streaming a continuation), without producing text for them. Decides whether the
    // first pushed token keeps its leading space: after "▁time" it does (" there"), after
    // BOS or at the very start it does not ("Once"). Without prime(), the start is assumed.
    void prime(std::span<const int32_t> context);
    // Text that is complete after adding `id` (may be empty).
    std::string push(int32_t id);
    // Whatever is still held back (an incomplete sequence at the end of the stream), as is.
    std::string flush();
    void reset();

private:
    std::string flush_complete();  // everything in pending_ except an unfinished UTF-8 tail

    const tokenizer& tok_;
    bool render_special_;
    bool at_start_ = true;
    std::string pending_;
};

}  // namespace edgellm
