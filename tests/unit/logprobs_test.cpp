// sampling::log_softmax_at: the log-probability of a token under the raw logits and the top-n
// alternatives (what the server reports as OpenAI logprobs), against a direct double-precision
// computation on an odd-sized vocabulary, with ties, extreme logits and top_n past the vocabulary.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "sampling/sampler.h"

using namespace edgellm;

TEST(Logprobs, LogSoftmaxAtMatchesADirectComputation) {
    std::mt19937 gen(7);
    std::normal_distribution<float> d(0.f, 4.f);
    std::vector<float> logits(1003);
    for (float& x : logits) x = d(gen);
    logits[17] = logits[400] = 30.f;  // a tie at the top: lower id first
    logits[5] = -1e30f;               // effectively impossible
    double sum = 0;
    for (float x : logits) sum += std::exp(static_cast<double>(x) - 30.0);
    const double lse = 30.0 + std::log(sum);
    for (int32_t tok : {0, 5, 17, 400, 1002}) {
        const sampling::token_logprob lp = sampling::log_softmax_at(logits, tok, 4);
        EXPECT_EQ(lp.token, tok);
        EXPECT_NEAR(lp.logprob, logits[static_cast<size_t>(tok)] - lse, 1e-5 * std::max(1.0, std::abs(static_cast<double>(lp.logprob))));
        ASSERT_EQ(lp.top.size(), 4u);
        EXPECT_EQ(lp.top[0].first, 17);
        EXPECT_EQ(lp.top[1].first, 400);
        for (size_t i = 1; i < lp.top.size(); ++i) EXPECT_GE(lp.top[i - 1].second, lp.top[i].second);
        for (const auto& [id, v] : lp.top) EXPECT_NEAR(v, logits[static_cast<size_t>(id)] - lse, 1e-5);
    }
    EXPECT_TRUE(sampling::log_softmax_at(logits, 3, 0).top.empty());
    // top_n past the vocabulary: every token, probabilities summing to 1.
    const std::vector<float> small = {1.f, 2.f, 3.f};
    const auto all = sampling::log_softmax_at(small, 0, 10);
    ASSERT_EQ(all.top.size(), 3u);
    double p = 0;
    for (const auto& t : all.top) p += std::exp(static_cast<double>(t.second));
    EXPECT_NEAR(p, 1.0, 1e-6);
    EXPECT_THROW(sampling::log_softmax_at(small, 3, 1), error);
}
