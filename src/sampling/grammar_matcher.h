// Grammar-constrained decoding: a pushdown matcher over a parsed GBNF grammar (the set of
// possible parse stacks, as llama.cpp's llama-grammar keeps), fed UTF-8 bytes; the model's
// token bytes in a prefix tree so one token mask walks shared prefixes once; and the sampler
// stage that masks the candidates and advances per accepted token.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sampling/grammar.h"
#include "sampling/sampler.h"

namespace edgellm::sampling {

// Positions in grammar::elems, innermost rule last; the top is always a terminal (chars).
using grammar_stack = std::vector<uint32_t>;
using stack_set = std::vector<grammar_stack>;  // sorted, without duplicates

// A UTF-8 sequence begun by one token and finished by the next: the bits so far and how many
// continuation bytes are still due.
struct utf8_partial {
    uint32_t value = 0;
    uint8_t n_remaining = 0;
    uint8_t n_total = 0;  // bytes of the whole sequence (2..4): sets the code points it may encode
    bool operator==(const utf8_partial&) const = default;
};

// Limits on a grammar's parallel parses and nesting, so an ambiguous or hostile grammar ends
// the generation with an error instead of exhausting memory.
constexpr size_t k_matcher_max_stacks = 4096;
constexpr size_t k_matcher_max_depth = 1024;

class grammar_matcher {
public:
    explicit grammar_matcher(std::shared_ptr<const grammar> g);
    // Feeds bytes; false (and the state unchanged) when the grammar does not allow them.
    bool accept(std::string_view bytes);
    // The input so far is a complete sentence of the grammar.
    bool can_end() const;
    // ... and nothing else can follow it.
    bool must_end() const;
    void reset();

    const grammar& get_grammar() const { return *g_; }
    const stack_set& stacks() const { return stacks_; }
    utf8_partial partial() const { return partial_; }

    // One byte from (in, p): false when no parse survives. out/p_out are the state after it;
    // while a UTF-8 sequence is unfinished the stacks do not change and `same` is set instead
    // of copying them to out.
    static bool step(const grammar& g, const stack_set& in, utf8_partial p, uint8_t byte, stack_set& out,
                     utf8_partial& p_out, bool& same);
    // The stacks after the code point cp.
    static void advance(const grammar& g, const stack_set& in, uint32_t cp, stack_set& out);

private:
    std::shared_ptr<const grammar> g_;
    stack_set stacks_;
    utf8_partial partial_;
};

// A model's vocabulary as the grammar sees it: each token's bytes (decoded once), which ones end
// generation, and a prefix tree over the bytes in preorder (a node's subtree is the index range
// up to subtree_end, so a dead prefix skips every token under it at once).
class token_vocab {
public:
    struct node {
        uint8_t byte = 0;
        uint32_t depth = 0;        // bytes from the root (the root is depth 0)
        uint32_t subtree_end = 0;  // one past the last node of this subtree
        uint32_t tok_begin = 0, tok_end = 0;  // tokens whose bytes end here: node_tokens()[begin, end)
    };
    token_vocab(std::vector<std::string> pieces, std::vector<int32_t> eog_ids);

    int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
    const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
    bool is_eog(int32_t id) const { return eog_[static_cast<size_t>(id)] != 0; }
    const std::vector<node>& nodes() const { return nodes_; }
    const std::vector<int32_t>& node_tokens() const { return node_tokens_; }
    size_t max_depth() const { return max_depth_; }  // bytes of the longest token

private:
    size_t max_depth_ = 0;
    std::vector<std::string> pieces_;
    std::vector<uint8_t> eog_;
    std::vector<node> nodes_;
    std::vector<int32_t> node_tokens_;
};

// The tokens a matcher's state allows next, as allowed[id] = 1: non-empty tokens whose bytes
// the grammar accepts (a token may end inside a UTF-8 sequence the grammar could finish), and
// the end-of-generation tokens when the grammar can end. `scratch` is reused between calls.
// The mask's memory, kept between calls for one grammar: the stack sets seen so far, numbered,
// and the transitions (set, partial UTF-8, byte) -> (set, partial) found so far: a DFA built
// lazily, so a walk that meets a state again (every character of a JSON string leads back to the
// same stacks) costs one lookup per trie node instead of copying and expanding stacks.
struct mask_scratch {
    struct edge {
        int32_t to = -1;  // -1: no parse survives the byte
        utf8_partial p;
    };
    struct level {
        int32_t id = -1;
        utf8_partial p;
    };
    const grammar* g = nullptr;
    std::vector<stack_set> sets;
    std::unordered_map<std::string, int32_t> ids;
    std::unordered_map<uint64_t, edge> edges;
    std::vector<level> levels;
    int32_t intern(stack_set&& s);
    void clear();
};
void allowed_tokens(const grammar_matcher& m, const token_vocab& v, std::vector<uint8_t>& allowed,
                    std::unique_ptr<mask_scratch>& scratch);

// The sampler stage: removes the candidates the grammar does not allow; per sequence.
class grammar_stage final : public sampler {
public:
    grammar_stage(std::shared_ptr<const grammar> g, std::shared_ptr<const token_vocab> v);
    ~grammar_stage() override;
    std::string name() const override { return "grammar"; }
    void apply(candidates& c, rng& r) override;
    void reset() override { m_.reset(); }
    // Whether the grammar allows `token` next (one token: cheaper than the whole mask).
    bool allows(int32_t token) const;
    // Moves the grammar past a generated token (end-of-generation tokens leave it as it is).
    void advance(int32_t token);
    bool must_end() const { return m_.must_end(); }

private:
    grammar_matcher m_;
    std::shared_ptr<const token_vocab> v_;
    std::vector<uint8_t> allowed_;
    std::unique_ptr<mask_scratch> scratch_;
};

}  // namespace edgellm::sampling
