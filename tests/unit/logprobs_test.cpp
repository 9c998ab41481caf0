// sampling::log_softmax_at: the log-probability of a token under the raw logits and the top-n
// alternatives (what the server reports as OpenAI logprobs), against a direct double-precision
// computation on an odd-sized vocabulary, with ties, extreme logits and top_n past the vocabulary;
// and the scheduler recording one per generated token (generation_params::logprobs) with a fake
// runner, before the token's on_token, and none when off.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "engine/scheduler.h"
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

namespace {
// A model whose next token after t is (t + 1) % 16: logit 2 there, 0 elsewhere.
class next_token_runner : public engine::step_runner {
public:
    next_token_runner() : kv_(hparams(), 64, ggml_type::f32, 1, 64) {}
    int64_t n_vocab() const override { return 16; }
    model::kv_cache& kv() override { return kv_; }
    std::span<const float> eval(const model::batch& b) override {
        kv_.extend(b.seq_ids[0], kv_.seq_len(b.seq_ids[0]) + static_cast<int64_t>(b.size()));
        logits_.assign(static_cast<size_t>(b.n_outputs()) * 16, 0.0f);
        size_t r = 0;
        for (size_t i = 0; i < b.size(); ++i)
            if (b.want_logits[i]) logits_[r++ * 16 + static_cast<size_t>((b.tokens[i] + 1) % 16)] = 2.0f;
        return logits_;
    }

private:
    static model::model_hparams hparams() {
        model::model_hparams hp;
        hp.n_layer = hp.n_head = hp.n_head_kv = 1;
        hp.head_dim = hp.n_embd = 2;
        hp.n_vocab = 16;
        return hp;
    }
    model::kv_cache kv_;
    std::vector<float> logits_;
};
}  // namespace

TEST(Logprobs, SchedulerRecordsOnePerGeneratedTokenBeforeItsOnToken) {
    for (int top : {-1, 0, 3}) {
        SCOPED_TRACE(top);
        next_token_runner runner;
        engine::scheduler sched(runner, {});
        engine::request r;
        r.prompt = {3};
        r.gp.n_predict = 5;
        r.gp.sampling.temperature = 1.0f;
        r.gp.sampling.seed = 1;
        r.gp.logprobs = top;
        std::vector<std::string> events;
        r.on_logprob = [&](const sampling::token_logprob& lp) { events.push_back("lp" + std::to_string(lp.token)); };
        r.on_token = [&](int32_t t) {
            events.push_back("tok" + std::to_string(t));
            return true;
        };
        engine::sequence_result res;
        r.on_done = [&](const engine::sequence_result& x) { res = x; };
        sched.submit(std::move(r));
        sched.run_until_idle();
        ASSERT_EQ(res.tokens.size(), 5u);
        if (top < 0) {
            EXPECT_TRUE(res.logprobs.empty());
            EXPECT_EQ(events.size(), 5u);
            continue;
        }
        ASSERT_EQ(res.logprobs.size(), 5u);
        ASSERT_EQ(events.size(), 10u);
        const double lse = std::log(15.0 + std::exp(2.0));
        int32_t prev = 3;
        for (size_t i = 0; i < 5; ++i) {
            const auto& lp = res.logprobs[i];
            EXPECT_EQ(lp.token, res.tokens[i]);
            EXPECT_EQ(events[2 * i], "lp" + std::to_string(lp.token));
            EXPECT_EQ(events[2 * i + 1], "tok" + std::to_string(lp.token));
            // The raw distribution, whatever the sampler drew at temperature 1.
            const double want = lp.token == (prev + 1) % 16 ? 2.0 - lse : -lse;
            EXPECT_NEAR(lp.logprob, want, 1e-5);
            ASSERT_EQ(lp.top.size(), static_cast<size_t>(top));
            if (top > 0) {
                EXPECT_EQ(lp.top[0].first, (prev + 1) % 16);
                EXPECT_NEAR(lp.top[0].second, 2.0 - lse, 1e-5);
            }
            prev = lp.token;
        }
    }
}
