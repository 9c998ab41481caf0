// Speculative decoding inside the scheduler: n-gram (prompt lookup) drafts evaluated in the
// same batched pass as the pending token, kept while they equal what the sequence's sampler
// picks, and rolled back from the KV cache after the first mismatch. Output must equal plain
// decoding for every draft length and batch size, greedy and sampled. Fake runners, no model.
#include <gtest/gtest.h>

#include "fake_runners.h"

namespace edgellm {
namespace {

using namespace edgellm::testing;
using engine::ngram_draft;

std::vector<int32_t> v(std::initializer_list<int32_t> l) { return l; }

// from + 1, from + 2, ... (n tokens, mod 16)
std::vector<int32_t> counting_from(int32_t from, int n) {
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) out.push_back((from + 1 + i) % 16);
    return out;
}

TEST(NgramDraft, ContinuesTheLatestEarlierMatchOfTheLongestTail) {
    EXPECT_EQ(ngram_draft(v({1, 2, 3, 4, 1, 2}), 2, 3), v({3, 4, 1}));
    EXPECT_EQ(ngram_draft(v({1, 2, 3, 4, 1, 2}), 2, 10), v({3, 4, 1, 2})) << "up to the end of what is known";
    EXPECT_EQ(ngram_draft(v({5, 1, 2, 7, 1, 2, 8, 1, 2}), 2, 2), v({8, 1})) << "the latest occurrence";
    EXPECT_EQ(ngram_draft(v({1, 2, 3, 9, 3}), 2, 4), v({9, 3})) << "no 2-gram match: a 1-gram one";
    EXPECT_EQ(ngram_draft(v({9, 7, 1, 5, 7, 2, 9, 7}), 3, 1), v({1})) << "the 2-gram 9 7 beats the later 1-gram 7";
    EXPECT_EQ(ngram_draft(v({9, 7, 1, 5, 7, 2, 9, 7}), 1, 1), v({2}));
    EXPECT_TRUE(ngram_draft(v({1, 2, 3, 4}), 3, 4).empty());
    EXPECT_TRUE(ngram_draft(v({1}), 3, 4).empty());
    EXPECT_TRUE(ngram_draft(v({1, 2, 1}), 2, 0).empty());
}

struct run_result {
    std::map<int, sequence_result> out;
    int64_t n_evals = 0;
    uint64_t drafted = 0, accepted = 0;
};

// Runs the prompts at once on `parallel` slots with the given speculation settings.
run_result run(const std::vector<std::vector<int32_t>>& prompts, int parallel, engine::speculation_params spec,
               bool periodic, int n_predict, float temperature = 0) {
    history_runner fr(parallel, 256, 0);
    fr.periodic = periodic;
    scheduler_params sp;
    sp.spec = spec;
    sp.n_batch = 32;
    scheduler sch(fr, sp);
    run_result r;
    for (size_t i = 0; i < prompts.size(); ++i) {
        request q = greedy(prompts[i], n_predict, r.out, static_cast<int>(i));
        q.gp.sampling.temperature = temperature;
        q.gp.sampling.seed = 1234 + i;
        sch.submit(std::move(q));
    }
    sch.run_until_idle();
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
    r.n_evals = fr.n_evals;
    r.drafted = sch.metrics().draft_tokens;
    r.accepted = sch.metrics().draft_accepted;
    return r;
}

std::vector<std::vector<int32_t>> prompts(int n) {
    std::vector<std::vector<int32_t>> out;
    for (int i = 0; i < n; ++i) {
        auto p = tokens_from(60 + static_cast<uint32_t>(i), 20 + 9 * static_cast<size_t>(i));
        // A repeated stretch, as in a rewrite of a given text.
        p.insert(p.end(), p.begin() + 3, p.begin() + 12);
        out.push_back(p);
    }
    return out;
}

TEST(Speculation, GreedyOutputEqualsPlainDecodingForEveryDraftLengthAndBatchSize) {
    for (bool periodic : {false, true}) {
        for (int parallel : {1, 4}) {
            const auto ps = prompts(4);
            const run_result plain = run(ps, parallel, {}, periodic, 40);
            for (int ngram : {1, 3}) {
                for (int draft_max : {1, 4, 12}) {
                    SCOPED_TRACE(::testing::Message() << "periodic " << periodic << ", parallel " << parallel << ", ngram "
                                                    << ngram << ", draft-max " << draft_max);
                    const run_result spec = run(ps, parallel, {ngram, draft_max, 1, nullptr}, periodic, 40);
                    for (int i = 0; i < 4; ++i) {
                        EXPECT_EQ(spec.out.at(i).tokens, plain.out.at(i).tokens) << "request " << i;
                        EXPECT_EQ(spec.out.at(i).stop, edgellm::engine::stop_reason::length);
                    }
                    EXPECT_GT(spec.drafted, 0u);
                    if (periodic) {
                        // The output cycles through the vocabulary: once it has, every draft holds
                        // (before, the matches in the random prompt are wrong).
                        EXPECT_GT(spec.accepted, 0u);
                        if (draft_max > 1) {
                            EXPECT_LT(spec.n_evals, plain.n_evals);
                        }
                    } else {
                        EXPECT_LT(spec.accepted, spec.drafted) << "the history sum is meant to reject drafts";
                    }
                }
            }
        }
    }
}

TEST(Speculation, SampledOutputEqualsPlainDecodingWithTheSameSeed) {
    const auto ps = prompts(3);
    const run_result plain = run(ps, 3, {}, false, 30, 1.0f);
    const run_result spec = run(ps, 3, {2, 6, 1, nullptr}, false, 30, 1.0f);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(spec.out.at(i).tokens, plain.out.at(i).tokens) << "request " << i;
    EXPECT_GT(spec.drafted, 0u);
}

TEST(Speculation, PlanCarriesThePendingTokenAndItsDraftsAndUpdateRollsBackTheRejected) {
    history_runner fr(1, 256, 0);
    scheduler_params sp;
    sp.spec = {2, 4, 1, nullptr};
    scheduler sch(fr, sp);
    std::map<int, sequence_result> out;
    // The prompt ends with 5 6 after an earlier 5 6 7 8 9: the draft is 7 8 9 1.
    request r = greedy(v({1, 5, 6, 7, 8, 9, 1, 2, 5, 6}), 10, out, 0);
    std::vector<int32_t> streamed;
    r.on_token = [&](int32_t t) {
        streamed.push_back(t);
        return true;
    };
    const uint64_t id = sch.submit(std::move(r));
    engine::step_plan p = sch.plan();
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_TRUE(p.seqs[0].prefill);
    EXPECT_EQ(p.seqs[0].id, id);
    EXPECT_EQ(p.seqs[0].n_draft, 0) << "no drafts before the first token";
    sch.update(p, sch.execute(p), 1.0);
    ASSERT_EQ(streamed.size(), 1u);
    const int32_t first = streamed[0];

    p = sch.plan();
    ASSERT_EQ(p.seqs.size(), 1u);
    const engine::planned_sequence& ps = p.seqs[0];
    EXPECT_FALSE(ps.prefill);
    EXPECT_TRUE(ps.samples);
    EXPECT_EQ(ps.pos, 10);
    const std::vector<int32_t> tail = {5, 6, first};
    const auto expect_drafts = ngram_draft(v({1, 5, 6, 7, 8, 9, 1, 2, 5, 6, first}), 2, 4);
    ASSERT_FALSE(expect_drafts.empty()) << "the 1-gram of the first token matches somewhere";
    EXPECT_EQ(ps.n_draft, static_cast<int>(expect_drafts.size()));
    ASSERT_EQ(ps.tokens.size(), expect_drafts.size() + 1);
    EXPECT_EQ(ps.tokens[0], first);
    EXPECT_EQ(std::vector<int32_t>(ps.tokens.begin() + 1, ps.tokens.end()), expect_drafts);
    EXPECT_EQ(fr.kv().seq_len(ps.slot), 10);
    sch.update(p, sch.execute(p), 1.0);
    // Whatever was accepted, the KV holds exactly the tokens evaluated and kept: the prompt, the
    // first token and the accepted drafts (the newest token is pending).
    EXPECT_EQ(fr.kv().seq_len(ps.slot), 10 + static_cast<int64_t>(streamed.size()) - 1);
    EXPECT_EQ(sch.metrics().draft_tokens.load(), expect_drafts.size());
    sch.run_until_idle();
    EXPECT_EQ(out[0].tokens, uncached(v({1, 5, 6, 7, 8, 9, 1, 2, 5, 6}), 10));
    EXPECT_EQ(out[0].tokens, streamed);
    EXPECT_EQ(out[0].n_drafted, static_cast<int64_t>(sch.metrics().draft_tokens.load()));
}

TEST(Speculation, PreemptionWithDraftsKeepsTheOutput) {
    // 3 blocks (48 positions) for two sequences that each grow to 30 positions: the newest is
    // preempted and recomputed while the other drafts; drafts take only free blocks, so they
    // add no preemption of their own.
    auto go = [](engine::speculation_params spec) {
        history_runner fr(2, 64, 48);
        fr.periodic = true;
        scheduler_params sp;
        sp.spec = spec;
        scheduler sch(fr, sp);
        std::map<int, sequence_result> out;
        sch.submit(greedy(v({1, 2}), 28, out, 0));
        sch.submit(greedy(v({9, 10}), 28, out, 1));
        sch.run_until_idle();
        EXPECT_EQ(fr.kv().n_used_blocks(), 0);
        return std::pair{out, sch.metrics().preemptions.load()};
    };
    const auto [plain, plain_preemptions] = go({});
    const auto [spec, spec_preemptions] = go({1, 8, 1, nullptr});
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(spec.at(i).tokens, plain.at(i).tokens);
        EXPECT_EQ(spec.at(i).stop, edgellm::engine::stop_reason::length);
    }
    EXPECT_GE(plain_preemptions, 1u);
    EXPECT_LE(spec_preemptions, plain_preemptions);
}

// A draft model stand-in: proposes what the periodic runner will pick (t + 1, t + 2, ...) for
// even slots and wrong tokens for odd ones, batched; records the calls.
class fake_drafter : public engine::draft_source {
public:
    std::vector<std::vector<int32_t>> propose(std::span<const want> wants) override {
        ++calls;
        max_batch = std::max(max_batch, wants.size());
        std::vector<std::vector<int32_t>> out;
        for (const want& w : wants) {
            std::vector<int32_t> d;
            for (int i = 0; i < w.max; ++i)
                d.push_back(w.slot % 2 ? (w.tokens.back() + 5 + i) % 16 : (w.tokens.back() + 1 + i) % 16);
            out.push_back(d);
        }
        return out;
    }
    void release(int slot) override { released.push_back(slot); }
    int calls = 0;
    size_t max_batch = 0;
    std::vector<int> released;
};

TEST(Speculation, ADraftSourceProposesForEverySequenceAtOnce) {
    const auto ps = prompts(4);
    const run_result plain = run(ps, 4, {}, true, 30);
    auto drafter = std::make_shared<fake_drafter>();
    const run_result spec = run(ps, 4, {0, 5, 1, drafter}, true, 30);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(spec.out.at(i).tokens, plain.out.at(i).tokens) << "request " << i;
    EXPECT_GE(drafter->max_batch, 3u) << "one call drafts for every decoding sequence";
    for (int i = 0; i < 4; ++i) {
        // Request i runs in slot i: the even slots' drafts are right, the odd slots' wrong.
        EXPECT_GT(spec.out.at(i).n_drafted, 0) << "request " << i;
        if (i % 2)
            EXPECT_EQ(spec.out.at(i).n_accepted, 0) << "request " << i;
        else
            EXPECT_GT(spec.out.at(i).n_accepted * 2, spec.out.at(i).n_drafted) << "request " << i;
    }
    EXPECT_GE(drafter->released.size(), 4u) << "every finished sequence's draft state is released";
}

TEST(Speculation, StopRulesHoldInsideARoundOfAcceptedDrafts) {
    // The periodic runner accepts every draft: the length limit and an end-of-generation token
    // must still end the output exactly where plain decoding ends it.
    for (int n_predict : {5, 17, 23}) {
        history_runner fr(1, 256, 0);
        fr.periodic = true;
        scheduler_params sp;
        sp.spec = {2, 12, 1, nullptr};
        sp.eog_ids = {15};
        scheduler sch(fr, sp);
        std::map<int, sequence_result> out;
        auto prompt = v({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2, 3});
        sch.submit(greedy(prompt, n_predict, out, 0));
        request ignoring = greedy(prompt, n_predict, out, 1);
        ignoring.gp.ignore_eos = true;
        sch.submit(std::move(ignoring));
        sch.run_until_idle();
        EXPECT_EQ(out[0].tokens, counting_from(3, std::min(n_predict, 11)));  // 4 .. 14, then 15 ends it
        EXPECT_EQ(out[0].stop, n_predict <= 11 ? edgellm::engine::stop_reason::length : edgellm::engine::stop_reason::eos);
        EXPECT_EQ(out[1].tokens.size(), static_cast<size_t>(n_predict));
        EXPECT_EQ(out[1].stop, edgellm::engine::stop_reason::length);
        EXPECT_EQ(fr.kv().n_used_blocks(), 0);
    }
}

}  // namespace
}  // namespace edgellm
