// SentencePiece BPE (`tokenizer.ggml.model = llama`): score-driven bigram merges over UTF-8
// characters with byte fallback, following llama.cpp's llm_tokenizer_spm.
#include <cstdio>
#include <queue>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode_util.h"

namespace edgellm::tok_detail {

void tokenizer_impl::init_spm() {
    byte_token.fill(k_no_token);
    for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = find(hex);
        if (id == k_no_token) id = find(std::string(1, static_cast<char>(b)));
        byte_token[static_cast<size_t>(b)] = id;
    }
    static constexpr std::string_view k_space = "\xE2\x96\x81";
    spm_split_at_spaces = true;
    for (const std::string& t : v.tokens) {
        for (size_t pos = t.find(k_space, 1); pos != std::string::npos; pos = t.find(k_space, pos + 1)) {
            if (pos < k_space.size() || t.compare(pos - k_space.size(), k_space.size(), k_space) != 0) {
                spm_split_at_spaces = false;
                return;
            }
        }
    }
}

namespace {

struct symbol {
    int prev;
    int next;
    size_t offset;  // into the session text
    size_t n;       // bytes; 0 once merged into its left neighbour
};

struct bigram {
    int left;
    int right;
    float score;
    size_t size;
};

// Highest score first; on ties the leftmost pair.
struct bigram_order {
    bool operator()(const bigram& l, const bigram& r) const {
        return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
};

class spm_session {
public:
    spm_session(const tokenizer_impl& tok, std::string_view text) : tok_(tok), text_(text) {}

    void run(std::vector<int32_t>& out) {
        for (size_t offs = 0; offs < text_.size();) {
            // One symbol per well-formed character; an invalid byte is a symbol of its own so that
            // it cannot swallow the next character (llama.cpp trusts the lead byte here, which
            // loses a following space for invalid input; for valid UTF-8 the two agree).
            size_t next = offs;
            uint32_t cp;
            const size_t len = unicode::decode_utf8(text_, next, cp) ? next - offs : 1;
            const int index = static_cast<int>(symbols_.size());
            symbols_.push_back({index - 1, offs + len == text_.size() ? -1 : index + 1, offs, len});
            offs += len;
        }
        for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add_bigram(i - 1, i);

        while (!queue_.empty()) {
            const bigram bg = queue_.top();
            queue_.pop();
            symbol& l = symbols_[static_cast<size_t>(bg.left)];
            symbol& r = symbols_[static_cast<size_t>(bg.right)];
            // Stale entry: one side was merged away since it was queued.
            if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) symbols_[static_cast<size_t>(r.next)].prev = bg.left;
            try_add_bigram(l.prev, bg.left);
            try_add_bigram(bg.left, l.next);
        }
        if (symbols_.empty()) return;
        for (int i = 0; i != -1; i = symbols_[static_cast<size_t>(i)].next) resegment(symbols_[static_cast<size_t>(i)], out);
    }

private:
    std::string_view text_of(const symbol& s) const { return text_.substr(s.offset, s.n); }

    // Every merge produced a vocab token, so a symbol is either a token or a single character
    // that is not in the vocab and falls back to byte tokens.
    void resegment(const symbol& s, std::vector<int32_t>& out) const {
        const std::string_view text = text_of(s);
        const int32_t id = tok_.find(text);
        if (id != k_no_token) {
            out.push_back(id);
            return;
        }
        for (char c : text) {
            const int32_t b = tok_.byte_token[static_cast<uint8_t>(c)];
            if (b != k_no_token)
                out.push_back(b);
            else if (tok_.v.unk != k_no_token)
                out.push_back(tok_.v.unk);
        }
    }

    void try_add_bigram(int left, int right) {
        if (left == -1 || right == -1) return;
        const symbol& l = symbols_[static_cast<size_t>(left)];
        const symbol& r = symbols_[static_cast<size_t>(right)];
        const std::string_view text = text_.substr(l.offset, l.n + r.n);
        const int32_t id = tok_.find(text);
        if (id == k_no_token) return;
        queue_.push({left, right, tok_.v.scores[static_cast<size_t>(id)], text.size()});
    }

    const tokenizer_impl& tok_;
    std::string_view text_;
    std::vector<symbol> symbols_;
    std::priority_queue<bigram, std::vector<bigram>, bigram_order> queue_;
};

}  // namespace

void tokenizer_impl::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
    // SentencePiece marks spaces with U+2581 so that they merge like any other character.
    std::string escaped;
    escaped.reserve(text.size() + text.size() / 4);
    for (char c : text) {
        if (c == ' ')
            escaped += "\xE2\x96\x81";
        else
            escaped.push_back(c);
    }
    if (!spm_split_at_spaces) {
        spm_session(*this, escaped).run(out);
        return;
    }
    // Cut before every U+2581 that follows another character; see spm_split_at_spaces.
    const std::string_view all = escaped;
    size_t start = 0;
    for (size_t pos = 1; pos + 3 <= all.size(); ++pos) {
        if (all.compare(pos, 3, "\xE2\x96\x81") != 0) continue;
        if (pos >= 3 && all.compare(pos - 3, 3, "\xE2\x96\x81") == 0) continue;
        spm_session(*this, all.substr(start, pos - start)).run(out);
        start = pos;
    }
    spm_session(*this, all.substr(start)).run(out);
}

}  // namespace edgellm::tok_detail
