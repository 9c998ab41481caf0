// Sampler implementations. Semantics follow llama.cpp's samplers of the same names so that the
// same settings mean the same thing in both.
#include "sampling/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "sampling/grammar_matcher.h"

namespace edgellm::sampling {
namespace {

// Descending logit, ties by lower id, so the order never depends on the sort algorithm.
bool before(const token_candidate& a, const token_candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

class penalties final : public sampler {
public:
    penalties(int last_n, float repeat, float frequency, float presence)
        : last_n_(last_n), repeat_(repeat), frequency_(frequency), presence_(presence) {}
    std::string name() const override { return "penalties"; }
    void accept(int32_t token) override {
        if (last_n_ <= 0) return;
        recent_.push_back(token);
        ++counts_[token];
        if (static_cast<int>(recent_.size()) > last_n_) {
            auto it = counts_.find(recent_.front());
            if (--it->second == 0) counts_.erase(it);
            recent_.pop_front();
        }
    }
    void reset() override {
        recent_.clear();
        counts_.clear();
    }
    void apply(candidates& c, rng&) override {
        if (counts_.empty()) return;
        if (repeat_ == 1.0f && frequency_ == 0.0f && presence_ == 0.0f) return;
        for (token_candidate& t : c.items) {
            auto it = counts_.find(t.id);
            if (it == counts_.end()) continue;
            t.logit = t.logit > 0 ? t.logit / repeat_ : t.logit * repeat_;
            t.logit -= static_cast<float>(it->second) * frequency_ + presence_;
        }
        c.sorted = false;
    }

private:
    int last_n_;
    float repeat_, frequency_, presence_;
    std::deque<int32_t> recent_;
    std::unordered_map<int32_t, int> counts_;
};

class top_k final : public sampler {
public:
    explicit top_k(int k) : k_(k) {}
    std::string name() const override { return "top-k"; }
    void apply(candidates& c, rng&) override {
        if (k_ <= 0 || static_cast<size_t>(k_) >= c.items.size()) return;
        std::partial_sort(c.items.begin(), c.items.begin() + k_, c.items.end(), before);
        c.items.resize(static_cast<size_t>(k_));
        c.sorted = true;
    }

private:
    int k_;
};

class top_p final : public sampler {
public:
    top_p(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
    std::string name() const override { return "top-p"; }
    void apply(candidates& c, rng&) override {
        if (p_ >= 1.0f) return;
        c.softmax();
        double cum = 0;
        size_t keep = c.items.size();
        for (size_t i = 0; i < c.items.size(); ++i) {
            cum += c.items[i].p;
            if (cum >= p_ && i + 1 >= min_keep_) {
                keep = i + 1;
                break;
            }
        }
        c.items.resize(keep);
    }

private:
    float p_;
    size_t min_keep_;
};

class min_p final : public sampler {
public:
    min_p(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
    std::string name() const override { return "min-p"; }
    void apply(candidates& c, rng&) override {
        if (p_ <= 0.0f || c.items.empty()) return;
        // p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed.
        c.sort_descending();
        const float threshold = c.items.front().logit + std::log(p_);
        size_t keep = 1;
        while (keep < c.items.size() && c.items[keep].logit >= threshold) ++keep;
        c.items.resize(std::max(keep, std::min(min_keep_, c.items.size())));
    }

private:
    float p_;
    size_t min_keep_;
};

class temperature final : public sampler {
public:
    explicit temperature(float t) : t_(t) {}
    std::string name() const override { return fmt::format("temp({})", t_); }
    void apply(candidates& c, rng&) override {
        if (t_ == 1.0f) return;
        for (token_candidate& t : c.items) t.logit /= t_;
    }

private:
    float t_;
};

class greedy final : public sampler {
public:
    std::string name() const override { return "greedy"; }
    void apply(candidates& c, rng&) override {
        if (c.items.empty()) return;
        auto best = std::min_element(c.items.begin(), c.items.end(), before);
        const token_candidate chosen = *best;
        c.items.assign(1, chosen);
        c.sorted = true;
    }
};

class dist final : public sampler {
public:
    std::string name() const override { return "dist"; }
    void apply(candidates& c, rng& r) override {
        if (c.items.empty()) return;
        c.softmax();
        const double u = r.uniform01();
        double cum = 0;
        size_t pick = c.items.size() - 1;
        for (size_t i = 0; i < c.items.size(); ++i) {
            cum += c.items[i].p;
            if (u < cum) {
                pick = i;
                break;
            }
        }
        const token_candidate chosen = c.items[pick];
        c.items.assign(1, chosen);
    }
};

}  // namespace

void candidates::sort_descending() {
    if (!sorted) std::sort(items.begin(), items.end(), before);
    sorted = true;
}

void candidates::softmax() {
    sort_descending();
    if (items.empty()) return;
    const float max_logit = items.front().logit;
    double sum = 0;
    for (token_candidate& t : items) {
        t.p = std::exp(t.logit - max_logit);
        sum += t.p;
    }
    for (token_candidate& t : items) t.p = static_cast<float>(t.p / sum);
}

std::unique_ptr<sampler> make_penalties(int last_n, float repeat, float frequency, float presence) {
    return std::make_unique<penalties>(last_n, repeat, frequency, presence);
}
std::unique_ptr<sampler> make_top_k(int k) { return std::make_unique<top_k>(k); }
std::unique_ptr<sampler> make_top_p(float p, size_t min_keep) { return std::make_unique<top_p>(p, min_keep); }
std::unique_ptr<sampler> make_min_p(float p, size_t min_keep) { return std::make_unique<min_p>(p, min_keep); }
std::unique_ptr<sampler> make_temperature(float t) { return std::make_unique<temperature>(t); }
std::unique_ptr<sampler> make_greedy() { return std::make_unique<greedy>(); }
std::unique_ptr<sampler> make_dist() { return std::make_unique<dist>(); }

void validate(const sampling_params& p) {
    if (!std::isfinite(p.temperature)) throw usage_error("--temp must be a finite number");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
        throw usage_error(fmt::format("--top-p must be in (0, 1], got {}", p.top_p));
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) throw usage_error(fmt::format("--min-p must be in [0, 1], got {}", p.min_p));
    if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
        throw usage_error(fmt::format("--repeat-penalty must be positive, got {}", p.repeat_penalty));
    if (!std::isfinite(p.frequency_penalty) || !std::isfinite(p.presence_penalty))
        throw usage_error("frequency / presence penalties must be finite");
    if (p.penalty_last_n < 0) throw usage_error(fmt::format("--repeat-last-n must be >= 0, got {}", p.penalty_last_n));
}

uint64_t random_seed() {
    std::random_device rd;
    const uint64_t hi = rd(), lo = rd();
    const auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return ((hi << 32) | lo) ^ t;
}

sampler_chain::sampler_chain(uint64_t seed) : rng_(seed) {}
sampler_chain::~sampler_chain() = default;
sampler_chain::sampler_chain(sampler_chain&&) noexcept = default;
sampler_chain& sampler_chain::operator=(sampler_chain&&) noexcept = default;

sampler_chain sampler_chain::from_params(const sampling_params& p, std::shared_ptr<const token_vocab> vocab) {
    validate(p);
    sampler_chain chain(p.seed);
    if (p.grammar) {
        if (!vocab) throw usage_error("a grammar needs the model's vocabulary (no tokenizer in this model?)");
        auto g = std::make_unique<grammar_stage>(p.grammar, std::move(vocab));
        chain.grammar_ = g.get();
        chain.add(std::move(g));
    }
    chain.add(make_penalties(p.penalty_last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty));
    if (p.temperature <= 0.0f) {
        chain.add(make_greedy());
        return chain;
    }
    chain.add(make_top_k(p.top_k));
    chain.add(make_top_p(p.top_p));
    chain.add(make_min_p(p.min_p));
    chain.add(make_temperature(p.temperature));
    chain.add(make_dist());
    return chain;
}

void sampler_chain::fill(std::span<const float> logits) {
    if (logits.empty()) throw error("cannot sample from an empty vocabulary");
    cur_.items.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
        // A NaN would break the ordering every sampler relies on; it means the model misbehaved.
        if (std::isnan(logits[i])) throw error(fmt::format("model produced a NaN logit for token {}", i));
        cur_.items[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
    }
    cur_.sorted = false;
}

int32_t sampler_chain::sample(std::span<const float> logits) {
    fill(logits);
    if (grammar_ && !grammar_->must_end()) {
        // Fast path: the unconstrained pick, kept when the grammar allows it.
        for (size_t i = 1; i < chain_.size(); ++i) chain_[i]->apply(cur_, rng_);
        if (!cur_.items.empty()) {
            if (cur_.items.size() > 1) cur_.sort_descending();
            if (grammar_->allows(cur_.items.front().id)) return cur_.items.front().id;
        }
        fill(logits);
    }
    for (auto& s : chain_) s->apply(cur_, rng_);
    if (cur_.items.empty()) throw error("sampler chain removed every candidate");
    if (cur_.items.size() == 1) return cur_.items.front().id;
    // A chain without a final picker: take the most likely of what is left.
    cur_.sort_descending();
    return cur_.items.front().id;
}

token_logprob log_softmax_at(std::span<const float> logits, int32_t token, int top_n) {
    if (logits.empty() || token < 0 || static_cast<size_t>(token) >= logits.size())
        throw error("log_softmax_at: token outside the vocabulary");
    float mx = logits[0];
    for (float x : logits) mx = std::max(mx, x);
    double sum = 0;
    for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
    const double lse = mx + std::log(sum);
    token_logprob out;
    out.token = token;
    out.logprob = static_cast<float>(logits[static_cast<size_t>(token)] - lse);
    const size_t n = std::min(static_cast<size_t>(std::max(top_n, 0)), logits.size());
    if (n > 0) {
        std::vector<int32_t> ids(logits.size());
        for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
        std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), [&](int32_t a, int32_t b) {
            return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
                   (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
        });
        for (size_t i = 0; i < n; ++i)
            out.top.emplace_back(ids[i], static_cast<float>(logits[static_cast<size_t>(ids[i])] - lse));
    }
    return out;
}

std::vector<float> distribution(std::span<const float> logits, const sampling_params& p) {
    validate(p);
    if (logits.empty()) throw error("cannot sample from an empty vocabulary");
    candidates c;
    c.items.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) {
        if (std::isnan(logits[i])) throw error(fmt::format("model produced a NaN logit for token {}", i));
        c.items[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
    }
    rng unused(0);  // none of these samplers draws
    std::vector<std::unique_ptr<sampler>> chain;
    if (p.temperature <= 0.0f) {
        chain.push_back(make_greedy());
    } else {
        chain.push_back(make_top_k(p.top_k));
        chain.push_back(make_top_p(p.top_p));
        chain.push_back(make_min_p(p.min_p));
        chain.push_back(make_temperature(p.temperature));
    }
    for (auto& s : chain) s->apply(c, unused);
    std::vector<float> out(logits.size(), 0.0f);
    if (c.items.size() == 1) {
        out[static_cast<size_t>(c.items.front().id)] = 1.0f;
        return out;
    }
    c.softmax();  // as `dist` does before it draws
    for (const auto& t : c.items) out[static_cast<size_t>(t.id)] = t.p;
    return out;
}

int32_t pick(std::span<const float> probs, rng& r) {
    const double u = r.uniform01();
    double total = 0;
    for (float q : probs) total += q;
    double cum = 0;
    int32_t last = -1;
    for (size_t i = 0; i < probs.size(); ++i) {
        if (probs[i] <= 0) continue;
        last = static_cast<int32_t>(i);
        cum += probs[i];
        if (u * total < cum) return last;
    }
    if (last < 0) throw error("cannot sample from an all-zero distribution");
    return last;
}

void sampler_chain::accept(int32_t token) {
    for (auto& s : chain_) s->accept(token);
}

void sampler_chain::accept_generated(int32_t token) {
    accept(token);
    if (grammar_) grammar_->advance(token);
}

bool sampler_chain::grammar_done() const { return grammar_ && grammar_->must_end(); }

void sampler_chain::reset() {
    for (auto& s : chain_) s->reset();
}

std::string sampler_chain::describe() const {
    std::string s;
    for (const auto& smp : chain_) s += (s.empty() ? "" : " -> ") + smp->name();
    return s;
}

}  // namespace edgellm::sampling
