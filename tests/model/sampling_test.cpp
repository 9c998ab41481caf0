// Sampler chain: each sampler's rule on a hand-made distribution, penalties, and seeded
// reproducibility.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "sampling/sampler.h"

namespace edgellm::sampling {
namespace {

candidates make(const std::vector<float>& logits) {
    candidates c;
    for (size_t i = 0; i < logits.size(); ++i) c.items.push_back({static_cast<int32_t>(i), logits[i], 0});
    return c;
}

std::vector<int32_t> ids(const candidates& c) {
    std::vector<int32_t> out;
    for (const auto& t : c.items) out.push_back(t.id);
    return out;
}

TEST(Sampling, GreedyPicksArgmaxLowestIdOnTies) {
    sampler_chain chain(1);
    chain.add(make_greedy());
    const std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
    EXPECT_EQ(chain.sample(l), 1);
}

TEST(Sampling, TopKKeepsTheKLargest) {
    rng r(0);
    auto c = make({0.1f, 5.0f, 2.0f, 4.0f, -3.0f, 4.5f});
    make_top_k(3)->apply(c, r);
    EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 5, 3}));
}

TEST(Sampling, TopPKeepsSmallestSetReachingP) {
    rng r(0);
    // probabilities 0.5, 0.25, 0.125, 0.125
    auto c = make({std::log(4.0f), std::log(2.0f), 0.0f, 0.0f});
    make_top_p(0.7f)->apply(c, r);
    EXPECT_EQ(ids(c), (std::vector<int32_t>{0, 1}));
    auto d = make({std::log(4.0f), std::log(2.0f), 0.0f, 0.0f});
    make_top_p(0.5f)->apply(d, r);
    EXPECT_EQ(ids(d), (std::vector<int32_t>{0}));
}

TEST(Sampling, MinPDropsTokensBelowFractionOfBest) {
    rng r(0);
    // relative to the best: 1, 0.5, 0.2, 0.05
    auto c = make({0.0f, std::log(0.5f), std::log(0.2f), std::log(0.05f)});
    make_min_p(0.1f)->apply(c, r);
    EXPECT_EQ(ids(c), (std::vector<int32_t>{0, 1, 2}));
}

TEST(Sampling, PenaltiesFollowLlamaCppRules) {
    rng r(0);
    auto p = make_penalties(3, 2.0f, 0.5f, 0.25f);
    for (int32_t t : {0, 1, 1, 2}) p->accept(t);  // window of 3: {1, 1, 2}
    auto c = make({4.0f, 4.0f, -1.0f, 1.0f});
    p->apply(c, r);
    EXPECT_FLOAT_EQ(c.items[0].logit, 4.0f);                      // fell out of the window
    EXPECT_FLOAT_EQ(c.items[1].logit, 4.0f / 2 - 2 * 0.5f - 0.25f);  // twice
    EXPECT_FLOAT_EQ(c.items[2].logit, -1.0f * 2 - 0.5f - 0.25f);     // negative: multiplied
    EXPECT_FLOAT_EQ(c.items[3].logit, 1.0f);
}

TEST(Sampling, TemperatureZeroIsGreedyEvenWithPenaltyOff) {
    sampling_params p;
    p.temperature = 0;
    auto chain = sampler_chain::from_params(p);
    EXPECT_EQ(chain.describe(), "penalties -> greedy");
    EXPECT_EQ(chain.sample(std::vector<float>{1, 2, 7, 3}), 2);
}

TEST(Sampling, SameSeedSameSequenceDifferentSeedDiffers) {
    sampling_params p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    std::vector<float> logits(37);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i));
    auto run = [&](uint64_t seed) {
        p.seed = seed;
        auto chain = sampler_chain::from_params(p);
        std::vector<int32_t> out;
        for (int i = 0; i < 64; ++i) out.push_back(chain.sample(logits));
        return out;
    };
    EXPECT_EQ(run(42), run(42));
    EXPECT_NE(run(42), run(43));
}

// The distribution sampler follows softmax probabilities (chi-square-free sanity: frequencies
// within 3 standard deviations over 20000 draws).
TEST(Sampling, DistFollowsSoftmax) {
    sampler_chain chain(99);
    chain.add(make_dist());
    const std::vector<float> logits = {0.0f, std::log(3.0f), std::log(6.0f)};  // p = 0.1, 0.3, 0.6
    std::map<int32_t, int> n;
    const int draws = 20000;
    for (int i = 0; i < draws; ++i) ++n[chain.sample(logits)];
    const double p[3] = {0.1, 0.3, 0.6};
    for (int k = 0; k < 3; ++k) {
        const double sd = std::sqrt(draws * p[k] * (1 - p[k]));
        EXPECT_NEAR(n[k], draws * p[k], 3 * sd) << "token " << k;
    }
}

TEST(Sampling, InvalidParamsAreRejected) {
    sampling_params p;
    p.top_p = 0.0f;
    EXPECT_THROW(validate(p), usage_error);
    p = {};
    p.min_p = 1.5f;
    EXPECT_THROW(validate(p), usage_error);
    p = {};
    p.repeat_penalty = 0.0f;
    EXPECT_THROW(validate(p), usage_error);
    sampler_chain chain(1);
    chain.add(make_greedy());
    EXPECT_THROW(chain.sample(std::vector<float>{1.0f, NAN}), error);
}

}  // namespace
}  // namespace edgellm::sampling
