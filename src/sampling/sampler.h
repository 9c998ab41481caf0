// Token sampling as a chain of small samplers (grammar mask -> penalties -> top-k -> top-p ->
// min-p -> temperature -> random pick, or greedy), deterministic under an explicit seed.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace edgellm::sampling {

struct grammar;
class token_vocab;
class grammar_stage;

struct sampling_params {
    float temperature = 0.8f;      // <= 0: greedy (argmax after penalties)
    int top_k = 40;                // <= 0: off
    float top_p = 0.95f;           // >= 1: off
    float min_p = 0.05f;           // <= 0: off
    float repeat_penalty = 1.0f;   // 1: off; divides positive / multiplies negative logits
    float frequency_penalty = 0.0f;  // subtracted once per earlier occurrence
    float presence_penalty = 0.0f;   // subtracted once if the token occurred
    int penalty_last_n = 64;       // how many recent tokens the penalties look at (0: off)
    uint64_t seed = 0;             // the PRNG seed (the caller picks one when the user gave none: random_seed())
    // Constrained decoding: only output the grammar accepts (parse_grammar, json_schema_to_grammar);
    // null: off. Read-only and shared; each sequence gets its own matcher.
    std::shared_ptr<const ::edgellm::sampling::grammar> grammar;
};

// A fresh seed for a request that gave none, so that sampling differs between calls as with
// OpenAI and Ollama. The one owner of that rule (run, chat, serve, the native backend).
uint64_t random_seed();

struct token_candidate {
    int32_t id;
    float logit;
    float p;  // probability after the last softmax
};

// The working set a sampler chain narrows down. `sorted` says the entries are by descending logit.
struct candidates {
    std::vector<token_candidate> items;
    bool sorted = false;
    void sort_descending();
    void softmax();  // fills p from logits (sorts first)
};

// The random source: std::mt19937_64 with an explicit seed, and our own double conversion so the
// stream is the same with every standard library.
class rng {
public:
    explicit rng(uint64_t seed) : gen_(seed) {}
    double uniform01() { return static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0); }
    void reseed(uint64_t seed) { gen_.seed(seed); }

private:
    std::mt19937_64 gen_;
};

class sampler {
public:
    virtual ~sampler() = default;
    virtual std::string name() const = 0;
    virtual void apply(candidates& c, rng& r) = 0;
    virtual void accept(int32_t token) { (void)token; }
    virtual void reset() {}
};

// Individual samplers (exposed for tests and for callers building their own chain).
std::unique_ptr<sampler> make_penalties(int last_n, float repeat, float frequency, float presence);
std::unique_ptr<sampler> make_top_k(int k);
std::unique_ptr<sampler> make_top_p(float p, size_t min_keep = 1);
std::unique_ptr<sampler> make_min_p(float p, size_t min_keep = 1);
std::unique_ptr<sampler> make_temperature(float t);
std::unique_ptr<sampler> make_greedy();  // keeps only the arg-max
std::unique_ptr<sampler> make_dist();    // softmax, then picks one by the PRNG

// A chain ending in a single chosen token. Throws edgellm::usage_error on invalid params.
class sampler_chain {
public:
    explicit sampler_chain(uint64_t seed);
    ~sampler_chain();
    sampler_chain(sampler_chain&&) noexcept;
    sampler_chain& operator=(sampler_chain&&) noexcept;
    // The default chain for `p` (greedy when temperature <= 0). A grammar in `p` needs the
    // model's `vocab` (usage_error without it) and becomes the chain's first stage.
    static sampler_chain from_params(const sampling_params& p, std::shared_ptr<const token_vocab> vocab = nullptr);

    void add(std::unique_ptr<sampler> s) { chain_.push_back(std::move(s)); }
    // Picks the next token from logits [n_vocab]. With a grammar, the chain first runs without
    // the mask and keeps its pick when the grammar allows it (greedy: exactly the constrained
    // arg-max; sampling: rejection sampling, exact without truncation); otherwise the mask is
    // applied to the whole vocabulary and the chain runs again.
    int32_t sample(std::span<const float> logits);
    // Records a token that is now part of the context (prompt or generated) for the penalties.
    void accept(int32_t token);
    // Records a generated token: accept() plus moving the grammar past it.
    void accept_generated(int32_t token);
    // The grammar is complete and allows nothing more (generation must end); false without one.
    bool grammar_done() const;
    void reset();
    std::string describe() const;  // "penalties -> top-k -> ... -> dist"

private:
    void fill(std::span<const float> logits);
    std::vector<std::unique_ptr<sampler>> chain_;
    grammar_stage* grammar_ = nullptr;  // chain_[0] when there is a grammar
    rng rng_;
    candidates cur_;
};

// The probabilities the default chain for `p` draws from, as a dense [n_vocab] vector: top-k,
// top-p, min-p and temperature applied, then softmax (tokens cut out get 0). Greedy
// (temperature <= 0) gives a one-hot vector on the token greedy sampling picks. Penalties are not
// applied (they depend on the history). Speculative decoding compares these between models.
std::vector<float> distribution(std::span<const float> logits, const sampling_params& p);
// The log-probability of `token` under the model's raw distribution (log-softmax of `logits`,
// before penalties, truncation, temperature or a grammar), and the `top_n` most likely tokens
// with theirs, most likely first (ties by lower id). What the OpenAI API reports as logprobs.
struct token_logprob {
    int32_t token = -1;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;
};
token_logprob log_softmax_at(std::span<const float> logits, int32_t token, int top_n);

// Picks an index of the dense probabilities `probs` (summing to ~1) with one uniform draw.
int32_t pick(std::span<const float> probs, rng& r);

// Checks ranges (top-p in (0,1], penalties >= 0 ...); throws edgellm::usage_error naming the flag.
void validate(const sampling_params& p);

}  // namespace edgellm::sampling
