// Fuzz entry point for the tokenizers: arbitrary bytes through small hand-built SPM, byte-level
// BPE (two pre-tokenizers) and WordPiece vocabs must never crash, must give in-range ids, and
// must decode back to the input wherever the tokenizer is lossless.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_util.h"

namespace {

using namespace edgellm;

void add(vocab& v, std::string text, token_type type, float score = 0.0f) {
    v.tokens.push_back(std::move(text));
    v.types.push_back(type);
    v.scores.push_back(score);
}

std::unique_ptr<tokenizer> make_spm() {
    vocab v;
    v.type = vocab_type::spm;
    add(v, "<unk>", token_type::unknown);
    add(v, "<s>", token_type::control);
    add(v, "</s>", token_type::control);
    for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        add(v, hex, token_type::byte);
    }
    const std::string sp = "\xE2\x96\x81";
    int rank = 0;
    for (const char* t : {"a", "b", "e", "h", "t", "ab", "he", "the"}) add(v, t, token_type::normal, -float(++rank));
    for (const char* t : {"", "a", "t", "the", "he"}) add(v, sp + t, token_type::normal, -float(++rank) / 2);
    add(v, "<tool>", token_type::user_defined);
    apply_family_defaults(v);
    return tokenizer::from_vocab(std::move(v));
}

std::unique_ptr<tokenizer> make_bpe(const char* pre) {
    vocab v;
    v.type = vocab_type::bpe;
    v.pre = pre;
    for (int b = 0; b < 256; ++b) add(v, unicode::byte_to_unicode(static_cast<uint8_t>(b)), token_type::normal);
    const std::string g = unicode::byte_to_unicode(' ');
    const std::vector<std::pair<std::string, std::string>> merges = {
        {g, "t"}, {"h", "e"}, {g + "t", "he"}, {"i", "n"}, {g, "a"}, {"1", "2"}, {"\xC3\x83", "\xC2\xA9"}};
    for (const auto& [l, r] : merges) {
        add(v, l + r, token_type::normal);
        v.merges.push_back(l + " " + r);
    }
    add(v, "<|end|>", token_type::control);
    add(v, "<u>", token_type::user_defined);
    apply_family_defaults(v);
    v.eos = v.n_vocab() - 2;
    return tokenizer::from_vocab(std::move(v));
}

std::unique_ptr<tokenizer> make_wpm() {
    vocab v;
    v.type = vocab_type::wpm;
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) add(v, t, token_type::control);
    for (char c = 'a'; c <= 'z'; ++c) {
        add(v, std::string("\xE2\x96\x81") + c, token_type::normal);
        add(v, std::string(1, c), token_type::normal);
    }
    add(v, "\xE2\x96\x81the", token_type::normal);
    add(v, "\xE2\x96\x81!", token_type::normal);
    apply_family_defaults(v);
    v.bos = 2;
    v.unk = 1;
    v.sep = 3;
    v.pad = 0;
    v.mask = 4;
    return tokenizer::from_vocab(std::move(v));
}

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto spm = make_spm();
    static const auto bpe_gpt2 = make_bpe("gpt-2");
    static const auto bpe_llama3 = make_bpe("llama-bpe");
    static const auto wpm = make_wpm();
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    const tokenizer* toks[] = {spm.get(), bpe_gpt2.get(), bpe_llama3.get(), wpm.get()};
    const tokenizer& tok = *toks[flags & 3];
    const bool parse_special = flags & 4;
    const bool add_bos = flags & 8;

    const auto ids = tok.encode(text, add_bos, parse_special);
    for (int32_t id : ids)
        if (id < 0 || id >= tok.n_vocab()) fail("id out of range");
    const std::string back = tok.decode(ids);
    if (!parse_special) {
        // SentencePiece writes spaces as U+2581, so a literal U+2581 in the input comes back as a space.
        if (tok.type() == vocab_type::spm && text.find("\xE2\x96\x81") == std::string::npos && back != text)
            fail("SPM round trip");
        if (tok.type() == vocab_type::bpe && back != unicode::sanitize_utf8(text)) fail("BPE round trip");
    }

    // Streaming the same ids gives the same text, in valid chunks when the text is valid.
    incremental_decoder dec(tok);
    std::string streamed;
    const bool valid = unicode::is_valid_utf8(back);
    for (int32_t id : ids) {
        const std::string chunk = dec.push(id);
        if (valid && !unicode::is_valid_utf8(chunk)) fail("streamed chunk is not valid UTF-8");
        streamed += chunk;
    }
    streamed += dec.flush();
    if (streamed != back) fail("streaming decode differs from decode");

    // Arbitrary id sequences decode without crashing.
    std::vector<int32_t> any;
    for (size_t i = 1; i + 1 < size; i += 2) any.push_back(((data[i] << 8) | data[i + 1]) % tok.n_vocab());
    (void)tok.decode(any, flags & 16);
    return 0;
}
