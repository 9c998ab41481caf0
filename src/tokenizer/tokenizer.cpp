// Tokenizer front end: construction from a vocab, special-token partitioning of the input,
// BOS/EOS handling, detokenization and the streaming UTF-8-safe decoder.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "core/error.h"
#include "core/log.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode_util.h"

namespace edgellm {

namespace tok_detail {

namespace {

// Texts llama.cpp treats as end-of-turn / end-of-generation markers when the metadata does not
// say (converters rarely write eot_token_id).
constexpr std::string_view k_eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
                                            "<end_of_utterance>"};
// Current llama.cpp also counts "</s>" here and so treats it as a control token even where the
// vocab calls it normal (Qwen2) or user-defined (Phi-3); we follow it to tokenize identically.
// (A user-defined "</s>" therefore needs parse_special, like any control token.)
constexpr std::string_view k_eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
                                            "</s>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "[EOT]",
                                            "[EOS]", "<eos>", "<turn|>", "<|tool_response>"};
// gpt-oss's channel markers are user-defined (recognised without parse_special) whatever the
// vocab says, as in llama.cpp, which wants them rendered too.
constexpr std::string_view k_forced_user_defined_texts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
// Fill-in-the-middle pad / repo / file-separator tokens end generation too.
constexpr std::string_view k_fim_eog_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "<|fim_repo|>",
                                                "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"};

void check_id(const vocab& v, int32_t id, const char* what) {
    if (id != k_no_token && (id < 0 || id >= v.n_vocab()))
        throw error(std::string("tokenizer: ") + what + " id " + std::to_string(id) + " is outside the vocab of " +
                    std::to_string(v.n_vocab()));
}

}  // namespace

void tokenizer_impl::init() {
    const size_t n = v.tokens.size();
    if (n == 0) throw error("tokenizer: the vocab is empty");
    if (v.scores.size() != n) v.scores.resize(n, 0.0f);
    if (v.types.size() != n) v.types.resize(n, token_type::normal);
    check_id(v, v.bos, "BOS");
    check_id(v, v.eos, "EOS");
    check_id(v, v.eot, "EOT");
    check_id(v, v.eom, "EOM");
    check_id(v, v.unk, "UNK");
    check_id(v, v.sep, "SEP");
    check_id(v, v.pad, "PAD");
    check_id(v, v.mask, "MASK");

    token_to_id.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        // On duplicate texts the later id wins, as in llama.cpp's token_to_id map.
        token_to_id[v.tokens[i]] = static_cast<int32_t>(i);
        max_token_len_bytes = std::max(max_token_len_bytes, v.tokens[i].size());
    }

    auto mark_control = [&](int32_t id) {
        if (v.types[static_cast<size_t>(id)] != token_type::control) {
            log::debug("tokenizer: token {} '{}' looks like a control token; treating it as one", id, v.tokens[static_cast<size_t>(id)]);
            v.types[static_cast<size_t>(id)] = token_type::control;
        }
    };
    if (v.eot == k_no_token) {
        for (std::string_view t : k_eot_texts)
            if (const int32_t id = find(t); id != k_no_token) {
                v.eot = id;
                mark_control(id);
                break;
            }
    }
    for (std::string_view t : k_eog_texts)
        if (const int32_t id = find(t); id != k_no_token) {
            eog.insert(id);
            mark_control(id);
        }
    // Only the first text found of each FIM role counts, as in llama.cpp.
    for (auto [from, to] : {std::pair<size_t, size_t>{0, 4}, {4, 9}, {9, 10}})
        for (size_t k = from; k < to; ++k)
            if (const int32_t id = find(k_fim_eog_texts[k]); id != k_no_token) {
                eog.insert(id);
                mark_control(id);
                break;
            }
    for (std::string_view t : k_forced_user_defined_texts)
        if (const int32_t id = find(t); id != k_no_token) v.types[static_cast<size_t>(id)] = token_type::user_defined;
    for (int32_t id : {v.eos, v.eot, v.eom})
        if (id != k_no_token) eog.insert(id);

    // Two llama.cpp workarounds, keyed on which texts ended up in the end-of-generation set:
    auto eog_with_text = [&](std::string_view text) {
        for (int32_t id : eog)
            if (v.tokens[static_cast<size_t>(id)] == text) return id;
        return k_no_token;
    };
    // o200k_harmony (gpt-oss) and solar-open: "<|end|>" ends a message, not the generation; it
    // becomes user-defined.
    const bool has_call = eog_with_text("<|call|>") != k_no_token || eog_with_text("<|calls|>") != k_no_token;
    if (const int32_t end = eog_with_text("<|end|>");
        end != k_no_token && has_call &&
        (eog_with_text("<|return|>") != k_no_token || eog_with_text("<|flush|>") != k_no_token)) {
        eog.erase(end);
        v.types[static_cast<size_t>(end)] = token_type::user_defined;
    }
    // Gemma 4 (recognised by "<|tool_response>"): "</s>" is ordinary text there; it becomes a
    // normal token, no longer searched for in the input.
    if (const int32_t s = eog_with_text("</s>"); s != k_no_token && eog_with_text("<|tool_response>") != k_no_token) {
        eog.erase(s);
        v.types[static_cast<size_t>(s)] = token_type::normal;
    }

    for (size_t i = 0; i < n; ++i) {
        const token_type t = v.types[i];
        if (t == token_type::control || t == token_type::user_defined || t == token_type::unknown)
            special_tokens.push_back(static_cast<int32_t>(i));
    }
    std::stable_sort(special_tokens.begin(), special_tokens.end(), [&](int32_t a, int32_t b) {
        return v.tokens[static_cast<size_t>(a)].size() > v.tokens[static_cast<size_t>(b)].size();
    });

    // GGUF has no per-token strip attributes; llama.cpp sets them per model, by the tokenizer's
    // pre-tokenizer, architecture or name, and so do we. lstrip: whitespace before the token
    // is dropped; rstrip: whitespace after it. They apply wherever the token is recognised.
    lstrip.assign(n, 0);
    rstrip.assign(n, 0);
    std::string lname = v.name;
    std::transform(lname.begin(), lname.end(), lname.begin(), [](unsigned char c) { return std::tolower(c); });
    auto contains_any = [](const std::string& s, std::initializer_list<std::string_view> subs) {
        return std::any_of(subs.begin(), subs.end(), [&](std::string_view x) { return s.find(x) != std::string::npos; });
    };
    if (contains_any(v.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
        contains_any(v.arch, {"nomic-bert-moe", "jina-bert-v3"})) {
        // The mask token of these models swallows the whitespace before it.
        if (int32_t id = find("<mask>"); id != k_no_token) lstrip[static_cast<size_t>(id)] = 1;
    } else if (contains_any(lname, {"phi-3", "phi3"})) {
        // Phi-3's tokenizer strips whitespace to the right of its chat markers.
        for (int32_t id : special_tokens) rstrip[static_cast<size_t>(id)] = 1;
        if (int32_t id = find("</s>"); id != k_no_token) rstrip[static_cast<size_t>(id)] = 1;
        for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"})
            if (int32_t id = find(t); id != k_no_token) rstrip[static_cast<size_t>(id)] = 0;
    } else if (contains_any(lname, {"modern-bert"})) {
        if (int32_t id = find("[MASK]"); id != k_no_token) lstrip[static_cast<size_t>(id)] = 1;
    }

    switch (v.type) {
        case vocab_type::spm: init_spm(); break;
        case vocab_type::bpe: init_bpe(); break;
        case vocab_type::wpm: break;
    }

    pieces.resize(n);
    for (size_t i = 0; i < n; ++i) pieces[i] = make_piece(static_cast<int32_t>(i));
}

std::string tokenizer_impl::make_piece(int32_t id) const {
    const std::string& text = v.tokens[static_cast<size_t>(id)];
    switch (type_of(id)) {
        case token_type::control:
        case token_type::unknown:
        case token_type::user_defined:
        case token_type::unused:
        case token_type::undefined:
            return text;
        case token_type::byte:
            if (v.type != vocab_type::bpe && text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
                const int b = std::stoi(text.substr(3, 2), nullptr, 16);
                return std::string(1, static_cast<char>(b));
            }
            return text;
        case token_type::normal:
            break;
    }
    if (v.type == vocab_type::bpe) {
        // Map GPT-2's printable stand-ins back to bytes; anything else is kept as it is.
        std::string out;
        size_t pos = 0;
        while (pos < text.size()) {
            const size_t start = pos;
            uint32_t cp;
            if (!unicode::decode_utf8(text, pos, cp)) {
                out.push_back(text[pos++]);
                continue;
            }
            const int b = unicode::unicode_to_byte(cp);
            if (b >= 0)
                out.push_back(static_cast<char>(b));
            else
                out.append(text, start, pos - start);
        }
        return out;
    }
    // SPM and WPM write spaces as U+2581.
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
            out.push_back(' ');
            i += 3;
        } else {
            out.push_back(text[i++]);
        }
    }
    return out;
}

}  // namespace tok_detail

using tok_detail::tokenizer_impl;

tokenizer::tokenizer(std::unique_ptr<tokenizer_impl> impl) : impl_(std::move(impl)) {}
tokenizer::~tokenizer() = default;

std::unique_ptr<tokenizer> tokenizer::from_vocab(vocab v) {
    auto impl = std::make_unique<tokenizer_impl>();
    impl->v = std::move(v);
    impl->init();
    return std::unique_ptr<tokenizer>(new tokenizer(std::move(impl)));
}

std::unique_ptr<tokenizer> tokenizer::from_gguf(const gguf::file& file) { return from_vocab(vocab_from_gguf(file)); }

namespace {

// A piece of the input: either a special token found in it or a span of plain text.
struct fragment {
    int32_t token;  // k_no_token for text
    size_t offset;
    size_t length;
};

bool is_space_byte(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Splits `text` around special tokens, longest token text first (llama.cpp's
// tokenizer_st_partition). Control and unknown tokens are only recognised with parse_special.
std::vector<fragment> partition(const tokenizer_impl& t, std::string_view text, bool parse_special) {
    std::vector<fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({k_no_token, 0, text.size()});
    std::vector<fragment> next;
    for (int32_t id : t.special_tokens) {
        if (!parse_special && t.is_control_or_unknown(id)) continue;
        const std::string& st = t.v.tokens[static_cast<size_t>(id)];
        if (text.find(st) == std::string_view::npos) continue;
        next.clear();
        for (const fragment& f : frags) {
            if (f.token != k_no_token) {
                next.push_back(f);
                continue;
            }
            size_t off = f.offset;
            size_t len = f.length;
            while (len > 0) {
                const size_t match = text.substr(0, off + len).find(st, off);
                if (match == std::string_view::npos) {
                    next.push_back({k_no_token, off, len});
                    break;
                }
                size_t left_len = match - off;
                if (t.lstrip[static_cast<size_t>(id)])
                    while (left_len > 0 && is_space_byte(text[off + left_len - 1])) --left_len;
                if (left_len > 0) next.push_back({k_no_token, off, left_len});
                next.push_back({id, match, st.size()});
                size_t right_off = match + st.size();
                size_t right_len = off + len - right_off;
                if (t.rstrip[static_cast<size_t>(id)])
                    while (right_len > 0 && is_space_byte(text[right_off])) {
                        ++right_off;
                        --right_len;
                    }
                off = right_off;
                len = right_len;
            }
        }
        frags.swap(next);
    }
    return frags;
}

}  // namespace

std::vector<int32_t> tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    const tokenizer_impl& t = *impl_;
    const vocab& v = t.v;
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    const bool bos = add_bos && v.add_bos && v.bos != k_no_token;
    if (bos) out.push_back(v.bos);

    bool prev_special = true;  // SPM prefixes a space to text at the start or after a special token
    for (const fragment& f : partition(t, text, parse_special)) {
        if (f.token != k_no_token) {
            out.push_back(f.token);
            prev_special = true;
            continue;
        }
        const std::string_view piece = text.substr(f.offset, f.length);
        switch (v.type) {
            case vocab_type::spm:
                if (v.add_space_prefix && prev_special) {
                    std::string spaced;
                    spaced.reserve(piece.size() + 1);
                    spaced.push_back(' ');
                    spaced.append(piece);
                    t.encode_spm(spaced, out);
                } else
                    t.encode_spm(piece, out);
                break;
            case vocab_type::bpe: t.encode_bpe(piece, out); break;
            case vocab_type::wpm: t.encode_wpm(piece, out); break;
        }
        prev_special = false;
    }

    if (add_bos) {
        if (v.add_eos && v.eos != k_no_token) out.push_back(v.eos);
        if (v.add_sep && v.sep != k_no_token) out.push_back(v.sep);
    }
    if (bos && out.size() >= 2 && out[1] == v.bos)
        log::debug("tokenizer: the prompt starts with BOS and BOS was added: it now starts with two");
    return out;
}

std::string tokenizer::token_to_piece(int32_t id, bool render_special) const {
    const tokenizer_impl& t = *impl_;
    if (id < 0 || id >= n_vocab())
        throw error("token id " + std::to_string(id) + " is outside the vocab (0.." + std::to_string(n_vocab() - 1) + ")");
    const token_type ty = t.type_of(id);
    if (!render_special && ty != token_type::normal && ty != token_type::byte && ty != token_type::user_defined)
        return {};
    return t.pieces[static_cast<size_t>(id)];
}

std::string tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
    incremental_decoder dec(*this, render_special);
    std::string out;
    for (int32_t id : ids) out += dec.push(id);
    out += dec.flush();
    return out;
}

int32_t tokenizer::bos() const { return impl_->v.bos; }
int32_t tokenizer::eos() const { return impl_->v.eos; }
int32_t tokenizer::eot() const { return impl_->v.eot; }
int32_t tokenizer::unk() const { return impl_->v.unk; }
bool tokenizer::add_bos() const { return impl_->v.add_bos && impl_->v.bos != k_no_token; }
bool tokenizer::is_eog(int32_t id) const { return id != k_no_token && impl_->eog.count(id) > 0; }
bool tokenizer::is_special(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return false;
    const token_type ty = impl_->type_of(id);
    return ty == token_type::control || ty == token_type::unknown || ty == token_type::user_defined;
}
int32_t tokenizer::n_vocab() const { return impl_->v.n_vocab(); }
vocab_type tokenizer::type() const { return impl_->v.type; }
const std::string& tokenizer::pre_tokenizer_name() const { return impl_->pre.name; }
const vocab& tokenizer::get_vocab() const { return impl_->v; }
int32_t tokenizer::find_token(std::string_view text) const { return impl_->find(text); }

incremental_decoder::incremental_decoder(const tokenizer& tok, bool render_special)
    : tok_(tok), render_special_(render_special) {}

std::string incremental_decoder::push(int32_t id) {
    std::string piece = tok_.token_to_piece(id, render_special_);
    const vocab& v = tok_.get_vocab();
    if (tok_.is_special(id)) {
        // SPM encodes text after a special token with a fresh space prefix; WPM only at the start.
        if (v.type == vocab_type::spm) at_start_ = true;
    } else if (at_start_) {
        at_start_ = false;
        const bool strip = (v.type == vocab_type::spm && v.add_space_prefix) || v.type == vocab_type::wpm;
        if (strip && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    }
    pending_ += piece;
    return flush_complete();
}

void incremental_decoder::prime(std::span<const int32_t> context) {
    at_start_ = true;
    const vocab_type t = tok_.type();
    for (int32_t id : context) {
        if (tok_.is_special(id)) {
            if (t == vocab_type::spm) at_start_ = true;
        } else {
            at_start_ = false;
        }
    }
}

std::string incremental_decoder::flush_complete() {
    const size_t hold = unicode::incomplete_utf8_tail(pending_);
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string incremental_decoder::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

void incremental_decoder::reset() {
    pending_.clear();
    at_start_ = true;
}

}  // namespace edgellm
