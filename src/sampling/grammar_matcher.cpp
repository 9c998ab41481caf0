// The grammar matcher (stack expansion and per-code-point advance, after llama.cpp's
// llama-grammar), the token prefix tree, the token mask that walks it, and the sampler stage.
#include "sampling/grammar_matcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace edgellm::sampling {
namespace {

using kind = grammar_element::kind;

// Expands the stack until its top is a terminal (or it is empty: the input may end here), once
// per alternative of every rule on top; iterative, so a long chain of rules cannot overflow
// the call stack.
void expand(const grammar& g, grammar_stack st, stack_set& out) {
    std::vector<grammar_stack> work;
    work.push_back(std::move(st));
    size_t n_steps = 0;
    while (!work.empty()) {
        grammar_stack s = std::move(work.back());
        work.pop_back();
        if (++n_steps > 64 * k_matcher_max_stacks)
            throw error("grammar: too many parallel parses (the grammar is too ambiguous)");
        if (s.empty() || g.elems[s.back()].k == kind::chars) {
            out.push_back(std::move(s));
            continue;
        }
        if (s.size() > k_matcher_max_depth) continue;  // nested deeper than the limit: not followed
        const uint32_t p = s.back();
        const uint32_t rule = g.elems[p].value;
        s.pop_back();
        if (g.elems[p + 1].k != kind::end) s.push_back(p + 1);
        for (uint32_t alt : g.rule_alts[rule]) {
            grammar_stack ns = s;
            if (g.elems[alt].k != kind::end) ns.push_back(alt);
            work.push_back(std::move(ns));
        }
    }
}

void normalize(stack_set& s) {
    std::sort(s.begin(), s.end());
    s.erase(std::unique(s.begin(), s.end()), s.end());
    if (s.size() > k_matcher_max_stacks)
        throw error(fmt::format("grammar: more than {} parallel parses (the grammar is too ambiguous)",
                                k_matcher_max_stacks));
}

// The smallest code point a UTF-8 sequence of n bytes may encode (shorter ones are overlong,
// invalid UTF-8 that no tokenizer decodes as the character).
uint32_t min_code_point(uint8_t n_total) { return n_total == 2 ? 0x80 : n_total == 3 ? 0x800 : 0x10000; }

bool valid_code_point(uint32_t cp, uint8_t n_total) {
    return cp >= min_code_point(n_total) && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

// The code points a UTF-8 sequence with this prefix can still become (lo > hi: none).
std::pair<uint32_t, uint32_t> partial_range(utf8_partial p) {
    const uint32_t shift = 6u * p.n_remaining;
    const uint32_t lo = p.value << shift;
    return {std::max(lo, min_code_point(p.n_total)), std::min<uint32_t>(lo | ((1u << shift) - 1), 0x10FFFF)};
}

bool any_top_matches(const grammar& g, const stack_set& in, uint32_t lo, uint32_t hi) {
    for (const grammar_stack& s : in)
        if (!s.empty() && g.charsets[g.elems[s.back()].value].matches_any(lo, hi)) return true;
    return false;
}

}  // namespace

grammar_matcher::grammar_matcher(std::shared_ptr<const grammar> g) : g_(std::move(g)) {
    if (!g_) throw usage_error("grammar matcher: no grammar");
    reset();
}

void grammar_matcher::reset() {
    stacks_.clear();
    partial_ = {};
    for (uint32_t alt : g_->rule_alts[g_->root]) {
        grammar_stack s;
        if (g_->elems[alt].k != kind::end) s.push_back(alt);
        expand(*g_, std::move(s), stacks_);
    }
    normalize(stacks_);
}

void grammar_matcher::advance(const grammar& g, const stack_set& in, uint32_t cp, stack_set& out) {
    out.clear();
    for (const grammar_stack& s : in) {
        if (s.empty()) continue;
        const uint32_t p = s.back();
        if (!g.charsets[g.elems[p].value].matches(cp)) continue;
        grammar_stack ns(s.begin(), s.end() - 1);
        if (g.elems[p + 1].k != kind::end) ns.push_back(p + 1);
        expand(g, std::move(ns), out);
    }
    normalize(out);
}

bool grammar_matcher::step(const grammar& g, const stack_set& in, utf8_partial p, uint8_t byte, stack_set& out,
                           utf8_partial& p_out, bool& same) {
    same = false;
    uint32_t cp = 0;
    if (p.n_remaining == 0) {
        if (byte < 0x80) {
            cp = byte;
        } else {
            const int n = (byte >> 5) == 0x6 ? 1 : (byte >> 4) == 0xE ? 2 : (byte >> 3) == 0x1E ? 3 : -1;
            if (n < 0) return false;  // a continuation byte without a lead, or an invalid byte
            p_out = {static_cast<uint32_t>(byte & (0x3F >> n)), static_cast<uint8_t>(n), static_cast<uint8_t>(n + 1)};
            same = true;
            const auto [lo, hi] = partial_range(p_out);
            return lo <= hi && any_top_matches(g, in, lo, hi);
        }
    } else {
        if ((byte & 0xC0) != 0x80) return false;
        p_out = {(p.value << 6) | (byte & 0x3Fu), static_cast<uint8_t>(p.n_remaining - 1), p.n_total};
        if (p_out.n_remaining > 0) {
            same = true;
            const auto [lo, hi] = partial_range(p_out);
            return lo <= hi && any_top_matches(g, in, lo, hi);
        }
        cp = p_out.value;
        if (!valid_code_point(cp, p.n_total)) return false;
    }
    p_out = {};
    advance(g, in, cp, out);
    return !out.empty();
}

bool grammar_matcher::accept(std::string_view bytes) {
    stack_set cur = stacks_, next;
    utf8_partial p = partial_;
    for (char c : bytes) {
        utf8_partial np;
        bool same = false;
        if (!step(*g_, cur, p, static_cast<uint8_t>(c), next, np, same)) return false;
        if (!same) cur.swap(next);
        p = np;
    }
    stacks_ = std::move(cur);
    partial_ = p;
    return true;
}

bool grammar_matcher::can_end() const {
    if (partial_.n_remaining) return false;
    return std::any_of(stacks_.begin(), stacks_.end(), [](const grammar_stack& s) { return s.empty(); });
}

bool grammar_matcher::must_end() const {
    return partial_.n_remaining == 0 &&
           std::all_of(stacks_.begin(), stacks_.end(), [](const grammar_stack& s) { return s.empty(); });
}

// ---- token prefix tree ----

token_vocab::token_vocab(std::vector<std::string> pieces, std::vector<int32_t> eog_ids)
    : pieces_(std::move(pieces)), eog_(pieces_.size(), 0) {
    for (int32_t id : eog_ids)
        if (id >= 0 && static_cast<size_t>(id) < eog_.size()) eog_[static_cast<size_t>(id)] = 1;
    std::vector<int32_t> order(pieces_.size());
    std::iota(order.begin(), order.end(), 0);
    // Tokens with no bytes (control tokens) are never allowed by their bytes: left out of the tree.
    std::erase_if(order, [&](int32_t id) { return pieces_[static_cast<size_t>(id)].empty(); });
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return pieces_[static_cast<size_t>(a)] < pieces_[static_cast<size_t>(b)];
    });
    // Sorted order is preorder: each token adds the nodes of the bytes it does not share with
    // the previous one; the nodes left on the path get their subtree end when popped.
    nodes_.push_back({});
    std::vector<uint32_t> path = {0};  // path[d] = node at depth d
    std::string_view prev;
    for (int32_t id : order) {
        const std::string& s = pieces_[static_cast<size_t>(id)];
        size_t common = 0;
        while (common < s.size() && common < prev.size() && s[common] == prev[common]) ++common;
        while (path.size() > common + 1) {
            nodes_[path.back()].subtree_end = static_cast<uint32_t>(nodes_.size());
            path.pop_back();
        }
        for (size_t d = common; d < s.size(); ++d) {
            node n;
            n.byte = static_cast<uint8_t>(s[d]);
            n.depth = static_cast<uint32_t>(d + 1);
            max_depth_ = std::max<size_t>(max_depth_, n.depth);
            n.tok_begin = n.tok_end = static_cast<uint32_t>(node_tokens_.size());
            path.push_back(static_cast<uint32_t>(nodes_.size()));
            nodes_.push_back(n);
        }
        node& leaf = nodes_[path.back()];
        if (leaf.tok_end != node_tokens_.size()) leaf.tok_begin = static_cast<uint32_t>(node_tokens_.size());
        node_tokens_.push_back(id);
        leaf.tok_end = static_cast<uint32_t>(node_tokens_.size());
        prev = s;
    }
    while (!path.empty()) {
        nodes_[path.back()].subtree_end = static_cast<uint32_t>(nodes_.size());
        path.pop_back();
    }
}

// ---- the mask ----

int32_t mask_scratch::intern(stack_set&& s) {
    std::string key;
    for (const grammar_stack& st : s) {
        key.append(reinterpret_cast<const char*>(st.data()), st.size() * sizeof(uint32_t));
        key.append(4, '\xff');  // 0xffffffff is never a position: separates the stacks
    }
    auto [it, added] = ids.emplace(std::move(key), static_cast<int32_t>(sets.size()));
    if (added) sets.push_back(std::move(s));
    return it->second;
}

void mask_scratch::clear() {
    sets.clear();
    ids.clear();
    edges.clear();
}

namespace {
// Bounds on the cached DFA per sequence; past them it starts afresh.
constexpr size_t k_mask_max_sets = 1 << 16;
constexpr size_t k_mask_max_edges = 1 << 21;

uint64_t edge_key(int32_t id, utf8_partial p, uint8_t byte) {
    // An unfinished sequence holds at most 15 bits (a 4-byte lead and two continuations).
    return (static_cast<uint64_t>(id) << 40) | (static_cast<uint64_t>(p.value & 0x3FFFF) << 13) |
           (static_cast<uint64_t>(p.n_remaining & 3) << 11) | (static_cast<uint64_t>(p.n_total & 7) << 8) | byte;
}
}  // namespace

void allowed_tokens(const grammar_matcher& m, const token_vocab& v, std::vector<uint8_t>& allowed,
                    std::unique_ptr<mask_scratch>& scratch) {
    if (!scratch) scratch = std::make_unique<mask_scratch>();
    mask_scratch& sc = *scratch;
    const grammar& g = m.get_grammar();
    if (sc.g != &g || sc.sets.size() > k_mask_max_sets || sc.edges.size() > k_mask_max_edges) sc.clear();
    sc.g = &g;
    allowed.assign(static_cast<size_t>(v.n_vocab()), 0);
    if (m.can_end())
        for (int32_t id = 0; id < v.n_vocab(); ++id)
            if (v.is_eog(id)) allowed[static_cast<size_t>(id)] = 1;
    if (m.must_end()) return;
    const auto& nodes = v.nodes();
    const auto& toks = v.node_tokens();
    if (sc.levels.size() < v.max_depth() + 1) sc.levels.resize(v.max_depth() + 1);
    sc.levels[0] = {sc.intern(stack_set(m.stacks())), m.partial()};
    stack_set out;
    for (size_t i = 1; i < nodes.size();) {
        const token_vocab::node& n = nodes[i];
        const mask_scratch::level parent = sc.levels[n.depth - 1];
        const uint64_t key = edge_key(parent.id, parent.p, n.byte);
        auto it = sc.edges.find(key);
        if (it == sc.edges.end()) {
            mask_scratch::edge e;
            bool same = false;
            if (grammar_matcher::step(g, sc.sets[static_cast<size_t>(parent.id)], parent.p, n.byte, out, e.p, same))
                e.to = same ? parent.id : sc.intern(std::move(out));
            out.clear();
            it = sc.edges.emplace(key, e).first;
        }
        if (it->second.to < 0) {
            i = n.subtree_end;
            continue;
        }
        sc.levels[n.depth] = {it->second.to, it->second.p};
        for (uint32_t t = n.tok_begin; t < n.tok_end; ++t) allowed[static_cast<size_t>(toks[t])] = 1;
        ++i;
    }
}

// ---- the sampler stage ----

grammar_stage::grammar_stage(std::shared_ptr<const grammar> g, std::shared_ptr<const token_vocab> v)
    : m_(std::move(g)), v_(std::move(v)) {
    if (!v_) throw usage_error("a grammar needs the model's vocabulary");
}

grammar_stage::~grammar_stage() = default;

void grammar_stage::apply(candidates& c, rng&) {
    allowed_tokens(m_, *v_, allowed_, scratch_);
    std::erase_if(c.items, [&](const token_candidate& t) {
        return t.id < 0 || t.id >= v_->n_vocab() || !allowed_[static_cast<size_t>(t.id)];
    });
    if (c.items.empty()) throw error("grammar: no token of the vocabulary can continue the output here");
}

bool grammar_stage::allows(int32_t token) const {
    if (token < 0 || token >= v_->n_vocab()) return false;
    if (v_->is_eog(token)) return m_.can_end();
    const std::string& bytes = v_->piece(token);
    if (bytes.empty()) return false;
    grammar_matcher copy = m_;
    return copy.accept(bytes);
}

void grammar_stage::advance(int32_t token) {
    if (v_->is_eog(token)) return;
    if (!m_.accept(v_->piece(token)))
        throw error(fmt::format("grammar: token {} does not continue the grammar", token));
}

}  // namespace edgellm::sampling
