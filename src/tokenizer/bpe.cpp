// Byte-level BPE (`tokenizer.ggml.model = gpt2`): regex pre-tokenization, bytes mapped to
// GPT-2's printable alphabet, then merges applied lowest rank first; results cached per word.
#include <queue>

#include "core/log.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode_util.h"

namespace edgellm::tok_detail {

namespace {
constexpr size_t k_max_cached_words = 1 << 17;
constexpr size_t k_max_cached_word_bytes = 256;

uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
}  // namespace

void tokenizer_impl::init_bpe() {
    pre = find_pre_tokenizer(v.pre);
    if (!pre.known)
        log::warn("tokenizer: unknown pre-tokenizer '{}' (tokenizer.ggml.pre); using the default regexes",
                  v.pre.empty() ? std::string("<missing>") : v.pre);
    splitter = std::make_unique<regex_splitter>(pre.regexes);

    for (int b = 0; b < 256; ++b) bpe_byte_token[static_cast<size_t>(b)] = find(unicode::byte_to_unicode(static_cast<uint8_t>(b)));

    // A merge whose parts or result is not a token can never fire on token symbols (HF
    // tokenizers reject such files), so only fully resolvable merges are kept.
    merges.reserve(v.merges.size());
    size_t n_skipped = 0;
    for (size_t rank = 0; rank < v.merges.size(); ++rank) {
        const std::string& m = v.merges[rank];
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) {
            ++n_skipped;
            continue;
        }
        const std::string_view left(m.data(), sp);
        const std::string_view right(m.data() + sp + 1, m.size() - sp - 1);
        const int32_t l = find(left), r = find(right);
        const int32_t merged = find(std::string(left) + std::string(right));
        if (l == k_no_token || r == k_no_token || merged == k_no_token) {
            ++n_skipped;
            continue;
        }
        merges.try_emplace(pair_key(l, r), merge_result{static_cast<int32_t>(rank), merged});
    }
    if (n_skipped) log::debug("tokenizer: {} of {} merges do not resolve to tokens", n_skipped, v.merges.size());
}

namespace {

struct bpe_symbol {
    int32_t id;  // k_no_token for a byte whose stand-in is not in the vocab
    int prev;
    int next;
    bool alive;
};

struct bpe_candidate {
    int32_t rank;
    int left;
    int right;
    int32_t left_id;
    int32_t right_id;
    int32_t merged;
};

// Lowest rank first; on ties the leftmost pair (as HF tokenizers and llama.cpp).
struct candidate_order {
    bool operator()(const bpe_candidate& a, const bpe_candidate& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

void tokenizer_impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
    if (pre.ignore_merges) {
        std::string encoded;
        for (char c : word) encoded += unicode::byte_to_unicode(static_cast<uint8_t>(c));
        if (const int32_t id = find(encoded); id != k_no_token) {
            out.push_back(id);
            return;
        }
    }
    std::vector<bpe_symbol> syms(word.size());
    for (size_t i = 0; i < word.size(); ++i)
        syms[i] = {bpe_byte_token[static_cast<uint8_t>(word[i])], static_cast<int>(i) - 1,
                   i + 1 < word.size() ? static_cast<int>(i) + 1 : -1, true};

    std::priority_queue<bpe_candidate, std::vector<bpe_candidate>, candidate_order> queue;
    auto consider = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const int32_t l = syms[static_cast<size_t>(left)].id, r = syms[static_cast<size_t>(right)].id;
        if (l == k_no_token || r == k_no_token) return;
        auto it = merges.find(pair_key(l, r));
        if (it == merges.end()) return;
        queue.push({it->second.rank, left, right, l, r, it->second.id});
    };
    for (int i = 1; i < static_cast<int>(syms.size()); ++i) consider(i - 1, i);

    while (!queue.empty()) {
        const bpe_candidate c = queue.top();
        queue.pop();
        bpe_symbol& l = syms[static_cast<size_t>(c.left)];
        bpe_symbol& r = syms[static_cast<size_t>(c.right)];
        // Stale: a neighbour changed since this pair was queued.
        if (!l.alive || !r.alive || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;
        l.id = c.merged;
        r.alive = false;
        l.next = r.next;
        if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.left;
        consider(l.prev, c.left);
        consider(c.left, l.next);
    }
    // A byte missing from the vocab yields no token, as in llama.cpp.
    for (int i = syms.empty() ? -1 : 0; i != -1; i = syms[static_cast<size_t>(i)].next)
        if (syms[static_cast<size_t>(i)].id != k_no_token) out.push_back(syms[static_cast<size_t>(i)].id);
}

void tokenizer_impl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
    // The regexes need valid UTF-8; invalid bytes become U+FFFD as in llama.cpp.
    std::string sanitized;
    if (!unicode::is_valid_utf8(text)) {
        sanitized = unicode::sanitize_utf8(text);
        text = sanitized;
    }
    for (std::string_view word : splitter->split(text)) {
        const bool cacheable = word.size() <= k_max_cached_word_bytes;
        if (cacheable) {
            std::lock_guard<std::mutex> lock(cache_mutex);
            auto it = word_cache.find(word);
            if (it != word_cache.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
                continue;
            }
        }
        const size_t before = out.size();
        bpe_word(word, out);
        if (cacheable) {
            std::lock_guard<std::mutex> lock(cache_mutex);
            if (word_cache.size() >= k_max_cached_words) word_cache.clear();
            word_cache.try_emplace(std::string(word), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
        }
    }
}

}  // namespace edgellm::tok_detail
