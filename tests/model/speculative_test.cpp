// Speculative decoding: the acceptance rule keeps the target's distribution exactly (a fixed-seed
// statistical test on hand-made distributions), and with models the output is token for token
// the target's greedy output for any draft: itself, a different model with the same vocabulary,
// a quantized copy; stop rules (length, context, EOS) agree with plain decoding.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/engine.h"
#include "engine/speculative.h"
#include "model_fixture.h"
#include "test_util.h"

namespace edgellm::test {
namespace {

using engine::accept_drafts;

std::vector<float> normalised(std::vector<float> v) {
    float s = 0;
    for (float x : v) s += x;
    for (float& x : v) x /= s;
    return v;
}

TEST(SpeculativeAcceptance, FirstTokenFollowsTheTargetDistributionWhateverTheDraft) {
    // Target p and a deliberately different draft q over 6 tokens (q puts mass where p has none).
    const std::vector<float> p = normalised({0.30f, 0.25f, 0.20f, 0.15f, 0.10f, 0.0f});
    const std::vector<float> q = normalised({0.05f, 0.10f, 0.40f, 0.05f, 0.10f, 0.30f});
    const std::vector<float> p2 = normalised({1, 1, 1, 1, 1, 1});  // after an accepted draft
    sampling::rng r(12345);
    const int n = 200000;
    std::vector<int> first(6, 0);
    int accepted = 0;
    for (int i = 0; i < n; ++i) {
        const int32_t d = sampling::pick(q, r);
        const std::vector<std::vector<float>> prow = {p, p2}, qrow = {q};
        const auto a = accept_drafts(prow, qrow, std::vector<int32_t>{d}, r);
        const int32_t tok = a.n_accepted == 1 ? d : a.next;
        accepted += a.n_accepted;
        ++first[static_cast<size_t>(tok)];
    }
    // Each frequency within 4.5 standard errors of p (and token 5, impossible under p, never).
    for (size_t t = 0; t < 6; ++t) {
        const double f = static_cast<double>(first[t]) / n;
        const double se = std::sqrt(std::max(p[t] * (1 - p[t]), 1e-12f) / n);
        EXPECT_NEAR(f, p[t], 4.5 * se + 1e-9) << "token " << t;
    }
    EXPECT_EQ(first[5], 0);
    // Acceptance rate is sum_t min(p, q) = 0.05 + 0.10 + 0.20 + 0.05 + 0.10 = 0.5.
    EXPECT_NEAR(static_cast<double>(accepted) / n, 0.5, 0.01);
}

TEST(SpeculativeAcceptance, OneHotRowsAreGreedy) {
    auto one_hot = [](int t) {
        std::vector<float> v(5, 0.0f);
        v[static_cast<size_t>(t)] = 1.0f;
        return v;
    };
    sampling::rng r(1);
    const std::vector<std::vector<float>> p = {one_hot(2), one_hot(4), one_hot(0)};
    const std::vector<std::vector<float>> q = {one_hot(2), one_hot(1)};
    const auto a = accept_drafts(p, q, std::vector<int32_t>{2, 1}, r);
    EXPECT_EQ(a.n_accepted, 1);
    EXPECT_EQ(a.next, 4);  // the target's own choice at the first mismatch
    const std::vector<std::vector<float>> q_all = {one_hot(2), one_hot(4)};
    const auto b = accept_drafts(p, q_all, std::vector<int32_t>{2, 4}, r);
    EXPECT_EQ(b.n_accepted, 2);
    EXPECT_EQ(b.next, 0);  // the bonus token from the last target row
}

std::filesystem::path model_file(const std::string& tag, tiny_model_spec s) {
    const auto path = temp_dir(tag) / "m.gguf";
    write_tiny_model(s, path);
    return path;
}

std::vector<int32_t> greedy(engine::engine& e, const std::vector<int32_t>& prompt, int n, std::string* reason = nullptr) {
    engine::generation_params gp;
    gp.n_predict = n;
    gp.sampling.temperature = 0;
    std::vector<int32_t> out;
    const auto st = e.generate(prompt, gp, [&](int32_t t) {
        out.push_back(t);
        return true;
    });
    if (reason) *reason = engine::name(st.stop);
    return out;
}

std::vector<int32_t> speculative(engine::engine& t, engine::engine& d, const std::vector<int32_t>& prompt, int n,
                                 int draft_max, engine::generation_stats* st_out = nullptr) {
    engine::generation_params gp;
    gp.n_predict = n;
    gp.sampling.temperature = 0;
    engine::speculative_params sp;
    sp.draft_max = draft_max;
    std::vector<int32_t> out;
    engine::use_draft_model(t, d, sp);
    const auto st = t.generate(prompt, gp, [&](int32_t tok) {
        out.push_back(tok);
        return true;
    });
    t.set_speculation({});
    if (st_out) *st_out = st;
    return out;
}

const std::vector<int32_t> k_prompt = {1, 5, 17, 33, 2, 60, 9, 9, 41};

TEST(SpeculativeGreedy, EqualsPlainGreedyForAnyDraftAndDraftLength) {
    tiny_model_spec ts;
    ts.seed = 7;
    tiny_model_spec ds = ts;
    ds.seed = 99;  // a different model with the same vocabulary
    ds.n_layer = 1;
    tiny_model_spec qs = ts;
    qs.weight_type = ggml_type::q8_0;  // the target's weights, quantized
    engine::engine_params ep;
    ep.n_ctx = 128;
    ep.model_path = model_file("spec-target", ts).string();
    engine::engine target(ep);
    const std::vector<int32_t> want = greedy(target, k_prompt, 100);
    ASSERT_FALSE(want.empty());
    for (const auto& [name, spec] : {std::pair{"self", ts}, std::pair{"other", ds}, std::pair{"q8_0", qs}}) {
        engine::engine_params dp = ep;
        dp.model_path = model_file(std::string("spec-draft-") + name, spec).string();
        engine::engine draft(dp);
        for (int k : {1, 3, 8, 16}) {
            engine::generation_stats st;
            EXPECT_EQ(speculative(target, draft, k_prompt, 100, k, &st), want) << name << " draft, k=" << k;
            EXPECT_LE(st.n_accepted, st.n_drafted);
            if (std::string(name) == "self") {
                EXPECT_EQ(st.n_accepted, st.n_drafted) << "a model always agrees with itself";
            }
        }
    }
}

TEST(SpeculativeGreedy, StopsLikePlainDecodingAtTheContextEnd) {
    tiny_model_spec ts;
    engine::engine_params ep;
    ep.n_ctx = 24;  // the prompt has 9 tokens: the context ends long before n_predict
    ep.model_path = model_file("spec-ctx", ts).string();
    engine::engine target(ep);
    engine::engine draft(ep);
    std::string reason;
    const auto want = greedy(target, k_prompt, 100, &reason);
    EXPECT_EQ(reason, "context");
    engine::generation_stats st;
    EXPECT_EQ(speculative(target, draft, k_prompt, 100, 8, &st), want);
    EXPECT_EQ(st.stop, edgellm::engine::stop_reason::context);
}

TEST(SpeculativeErrors, DifferentVocabulariesAndBadDraftLengthsAreRefused) {
    tiny_model_spec ts, other;
    other.n_vocab = 71;
    engine::engine_params ep;
    ep.model_path = model_file("spec-v1", ts).string();
    engine::engine target(ep);
    ep.model_path = model_file("spec-v2", other).string();
    engine::engine draft(ep);
    try {
        engine::use_draft_model(target, draft, {});
        FAIL() << "a draft with another vocabulary was accepted";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
    }
    engine::speculative_params bad;
    bad.draft_max = 0;
    EXPECT_THROW(engine::use_draft_model(target, target, bad), usage_error);
}

// Penalties (and any sampler state) work with drafts: each row is sampled by the sequence's chain.
TEST(SpeculativeGreedy, PenaltiesGiveThePlainOutput) {
    tiny_model_spec ts;
    engine::engine_params ep;
    ep.n_ctx = 128;
    ep.model_path = model_file("spec-pen", ts).string();
    engine::engine target(ep);
    engine::engine draft(ep);
    engine::generation_params gp;
    gp.n_predict = 60;
    gp.sampling.temperature = 0;
    gp.sampling.repeat_penalty = 1.3f;
    gp.sampling.frequency_penalty = 0.2f;
    auto collect = [&](engine::engine& e, engine::generation_stats* st) {
        std::vector<int32_t> out;
        *st = e.generate(k_prompt, gp, [&](int32_t t) {
            out.push_back(t);
            return true;
        });
        return out;
    };
    engine::generation_stats plain_st, spec_st;
    const auto plain = collect(target, &plain_st);
    engine::use_draft_model(target, draft, {});
    const auto spec = collect(target, &spec_st);
    EXPECT_EQ(spec, plain);
    EXPECT_GT(spec_st.n_drafted, 0);
}

}  // namespace
}  // namespace edgellm::test
