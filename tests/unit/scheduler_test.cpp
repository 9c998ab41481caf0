// The continuous-batching scheduler and the paged KV cache's block accounting, driven by a fake
// runner (no model): sequences join and leave between steps, prefill is chunked within the
// token budget, blocks are freed on finish and cancel, the pool running out preempts the newest
// sequence (which later resumes with the same output), and a full queue is refused.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/scheduler.h"
#include "sampling/grammar.h"
#include "sampling/grammar_matcher.h"

namespace edgellm {
namespace {

using engine::request;
using engine::scheduler;
using engine::scheduler_params;
using engine::sequence_result;

model::model_hparams tiny_hparams() {
    model::model_hparams hp;
    hp.n_layer = 1;
    hp.n_head = 1;
    hp.n_head_kv = 1;
    hp.head_dim = 2;
    hp.n_embd = 2;
    hp.n_vocab = 16;
    return hp;
}

// A deterministic "model": the next token after t is (t + 1) % n_vocab, whatever the history.
// It checks what a real forward pass requires (every entry continues its sequence, its block
// is reserved) and records each step's batch.
class fake_runner : public engine::step_runner {
public:
    fake_runner(int n_seq, int64_t n_ctx, int64_t n_cells) : kv_(tiny_hparams(), n_ctx, ggml_type::f32, n_seq, n_cells) {}
    int64_t n_vocab() const override { return 16; }
    model::kv_cache& kv() override { return kv_; }
    std::span<const float> eval(const model::batch& b) override {
        steps.push_back(b);
        std::map<int32_t, int64_t> next;
        for (size_t i = 0; i < b.size(); ++i) {
            const int32_t s = b.seq_ids[i];
            auto it = next.try_emplace(s, kv_.seq_len(s)).first;
            EXPECT_EQ(b.positions[i], it->second) << "entry " << i << " does not continue sequence " << s;
            EXPECT_EQ(kv_.blocks_needed(s, b.positions[i] + 1), 0) << "no block reserved for position " << b.positions[i];
            ++it->second;
        }
        for (const auto& [s, n] : next) kv_.extend(s, n);
        logits_.assign(static_cast<size_t>(b.n_outputs()) * 16, 0.0f);
        size_t r = 0;
        for (size_t i = 0; i < b.size(); ++i)
            if (b.want_logits[i]) logits_[r++ * 16 + static_cast<size_t>((b.tokens[i] + 1) % 16)] = 1.0f;
        return logits_;
    }
    std::vector<model::batch> steps;

private:
    model::kv_cache kv_;
    std::vector<float> logits_;
};

request greedy(std::vector<int32_t> prompt, int n_predict, std::map<int, sequence_result>& out, int key) {
    request r;
    r.prompt = std::move(prompt);
    r.gp.n_predict = n_predict;
    r.gp.sampling.temperature = 0;
    r.on_done = [&out, key](const sequence_result& res) { out[key] = res; };
    return r;
}

std::vector<int32_t> counting(int32_t from, int n) {
    std::vector<int32_t> v;
    for (int i = 0; i < n; ++i) v.push_back((from + 1 + i) % 16);
    return v;
}

TEST(KvCache, BlocksComeFromOnePoolAndGoBack) {
    model::kv_cache kv(tiny_hparams(), 64, ggml_type::f16, 3, 64);  // 4 blocks of 16 for 3 sequences
    EXPECT_EQ(kv.n_blocks(), 4);
    EXPECT_TRUE(kv.reserve(0, 17));  // 2 blocks
    EXPECT_TRUE(kv.reserve(1, 16));  // 1 block
    EXPECT_EQ(kv.n_free_blocks(), 1);
    EXPECT_FALSE(kv.reserve(2, 20)) << "needs 2, 1 free";
    EXPECT_EQ(kv.n_free_blocks(), 1) << "a refused reserve takes nothing";
    const float row[2] = {1, 2};
    kv.store(0, 0, 16, row, row);
    EXPECT_THROW(kv.store(0, 1, 16, row, row), error) << "position 16 of sequence 1 has no block";
    kv.extend(0, 17);
    EXPECT_THROW(kv.extend(1, 17), error);
    kv.truncate(0, 5);  // back to one block
    EXPECT_EQ(kv.n_free_blocks(), 2);
    kv.clear_all();
    EXPECT_EQ(kv.n_free_blocks(), 4);
    EXPECT_THROW(kv.reserve(0, 65), error) << "past the per-sequence context";
}

TEST(KvCache, SequencesAreIsolatedAcrossSharedBlocks) {
    model::kv_cache kv(tiny_hparams(), 40, ggml_type::f32, 2, 96);
    for (int64_t p = 0; p < 40; ++p) {
        // Growing both a position at a time interleaves their blocks in the pool.
        ASSERT_TRUE(kv.reserve(0, p + 1));
        ASSERT_TRUE(kv.reserve(1, p + 1));
        const float a[2] = {float(p), 0.5f}, b[2] = {float(-p), 1.5f};
        kv.store(0, 0, p, a, a);
        kv.store(0, 1, p, b, b);
    }
    for (int s = 0; s < 2; ++s) {
        const kernels::kv_view v = kv.view(0, s);
        for (int64_t p = 0; p < 40; ++p) {
            const float* k = static_cast<const float*>(v.k_row(p));
            EXPECT_EQ(k[0], s == 0 ? float(p) : float(-p));
        }
    }
}

TEST(Scheduler, SingleSequenceGeneratesUntilLength) {
    fake_runner fr(1, 64, 0);
    std::map<int, sequence_result> out;
    scheduler_params sp;
    scheduler sch(fr, sp);
    sch.submit(greedy({1, 2, 3}, 5, out, 0));
    sch.run_until_idle();
    ASSERT_EQ(out.count(0), 1u);
    EXPECT_EQ(out[0].tokens, counting(3, 5));
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::length);
    EXPECT_EQ(out[0].n_decode, 4);
    EXPECT_EQ(fr.kv().n_used_blocks(), 0) << "blocks go back when the sequence ends";
    EXPECT_EQ(fr.steps.size(), 5u);  // one prefill pass + 4 decode passes
}

// Each sequence follows its own grammar in the same batch, and ends ("eos") as soon as its
// grammar is complete; a sequence without one is unaffected. Token i is the letter 'a' + i.
TEST(Scheduler, GrammarsArePerSequenceAndEndTheSequenceWhenComplete) {
    fake_runner fr(3, 64, 0);
    std::vector<std::string> pieces;
    for (int i = 0; i < 16; ++i) pieces.push_back(std::string(1, static_cast<char>('a' + i)));
    auto vocab = std::make_shared<const sampling::token_vocab>(pieces, std::vector<int32_t>{});
    scheduler_params sp;
    sp.vocab = [vocab] { return vocab; };
    scheduler sch(fr, sp);
    std::map<int, sequence_result> out;
    request cab = greedy({1, 2, 3}, 10, out, 0);  // the model wants "efg...", the grammar "cab"
    cab.gp.sampling.grammar = sampling::parse_grammar("root ::= \"c\" \"a\" \"b\"\n");
    request eg = greedy({1, 2, 3}, 10, out, 1);  // "e" is what the model wants; then "f" is not allowed
    eg.gp.sampling.grammar = sampling::parse_grammar("root ::= (\"e\" | \"f\") (\"g\" | \"h\")\n");
    sch.submit(std::move(cab));
    sch.submit(std::move(eg));
    sch.submit(greedy({1, 2, 3}, 4, out, 2));
    sch.run_until_idle();
    EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{2, 0, 1}));
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::eos);
    EXPECT_EQ(out[1].tokens, (std::vector<int32_t>{4, 6}));  // ties between g and h: the lower id
    EXPECT_EQ(out[1].stop, edgellm::engine::stop_reason::eos);
    EXPECT_EQ(out[2].tokens, counting(3, 4));
    EXPECT_EQ(out[2].stop, edgellm::engine::stop_reason::length);
    // Without the vocabulary a grammar cannot be followed: refused at submit.
    scheduler bare(fr, scheduler_params{});
    request r = greedy({1}, 2, out, 3);
    r.gp.sampling.grammar = sampling::parse_grammar("root ::= \"a\"\n");
    EXPECT_THROW(bare.submit(std::move(r)), usage_error);
}

TEST(Scheduler, EndOfGenerationStopsWithoutEmittingTheToken) {
    fake_runner fr(1, 64, 0);
    std::map<int, sequence_result> out;
    scheduler_params sp;
    sp.eog_ids = {6};
    scheduler sch(fr, sp);
    std::vector<int32_t> streamed;
    request r = greedy({2}, 10, out, 0);
    r.on_token = [&](int32_t t) {
        streamed.push_back(t);
        return true;
    };
    sch.submit(std::move(r));
    sch.run_until_idle();
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::eos);
    EXPECT_EQ(out[0].tokens, (std::vector<int32_t>{3, 4, 5}));
    EXPECT_EQ(streamed, out[0].tokens);
}

TEST(Scheduler, SequencesJoinAndLeaveTheRunningBatch) {
    fake_runner fr(4, 64, 0);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    sch.submit(greedy({1}, 6, out, 0));
    sch.step();  // A prefills and samples its first token
    sch.step();  // A decodes alone
    EXPECT_EQ(fr.steps.back().size(), 1u);
    sch.submit(greedy({5, 6, 7}, 2, out, 1));  // B joins mid-stream
    sch.step();
    // One pass holds A's next token and B's whole prompt.
    EXPECT_EQ(fr.steps.back().size(), 4u);
    EXPECT_EQ(sch.metrics().running.load(), 2);
    sch.step();  // B's second token: B reaches its length and leaves
    EXPECT_EQ(out.count(1), 1u);
    EXPECT_EQ(sch.metrics().running.load(), 1);
    sch.run_until_idle();
    EXPECT_EQ(out[0].tokens, counting(1, 6));
    EXPECT_EQ(out[1].tokens, counting(7, 2));
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
    EXPECT_EQ(sch.metrics().requests_finished.load(), 2u);
}

TEST(Scheduler, LongPromptIsPrefilledInChunksWhileOthersDecode) {
    fake_runner fr(2, 256, 0);
    std::map<int, sequence_result> out;
    scheduler_params sp;
    sp.n_batch = 8;
    scheduler sch(fr, sp);
    sch.submit(greedy({1}, 20, out, 0));
    sch.step();
    std::vector<int32_t> long_prompt(30, 3);
    sch.submit(greedy(long_prompt, 1, out, 1));
    // Every step still decodes A while B's 30 prompt tokens go 7 at a time (budget 8 - A's 1).
    for (int i = 0; i < 4; ++i) {
        sch.step();
        const auto& b = fr.steps.back();
        ASSERT_LE(b.size(), 8u);
        EXPECT_EQ(b.seq_ids[0], 0) << "the decoding sequence goes first";
        EXPECT_GE(b.size(), 2u);
    }
    sch.run_until_idle();
    EXPECT_EQ(out[1].tokens, counting(3, 1));
    EXPECT_EQ(out[0].tokens, counting(1, 20));
}

TEST(Scheduler, AdmissionWaitsForFreeSlots) {
    fake_runner fr(2, 64, 0);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    for (int i = 0; i < 3; ++i) sch.submit(greedy({int32_t(i)}, 3, out, i));
    sch.step();
    EXPECT_EQ(sch.metrics().running.load(), 2);
    EXPECT_EQ(sch.metrics().waiting.load(), 1);
    sch.run_until_idle();
    ASSERT_EQ(out.size(), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i].tokens, counting(i, 3));
}

TEST(Scheduler, CancelFreesTheSequenceBlocks) {
    fake_runner fr(2, 64, 0);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    const uint64_t a = sch.submit(greedy(std::vector<int32_t>(20, 1), 100, out, 0));
    sch.submit(greedy({1}, 3, out, 1));
    sch.step();
    EXPECT_EQ(fr.kv().n_used_blocks(), 3);  // 21 positions -> 2 blocks, 2 positions -> 1 block
    sch.cancel(a);
    sch.step();
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::cancelled);
    EXPECT_EQ(fr.kv().n_used_blocks(), 1);
    sch.run_until_idle();
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
    EXPECT_EQ(sch.metrics().requests_cancelled.load(), 1u);
}

TEST(Scheduler, CallbackReturningFalseCancels) {
    fake_runner fr(1, 64, 0);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    request r = greedy({1}, 50, out, 0);
    int n = 0;
    r.on_token = [&](int32_t) { return ++n < 3; };
    sch.submit(std::move(r));
    sch.run_until_idle();
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::cancelled);
    EXPECT_EQ(out[0].tokens.size(), 3u);
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
}

TEST(Scheduler, OutOfBlocksPreemptsTheNewestAndItResumesWithTheSameOutput) {
    // 3 blocks (48 positions) for two sequences that each grow to 30 positions.
    fake_runner fr(2, 64, 48);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    sch.submit(greedy({1, 2}, 28, out, 0));
    sch.submit(greedy({9, 10}, 28, out, 1));
    sch.run_until_idle();
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].tokens, counting(2, 28));
    EXPECT_EQ(out[1].tokens, counting(10, 28));
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::length);
    EXPECT_EQ(out[1].stop, edgellm::engine::stop_reason::length);
    EXPECT_GE(sch.metrics().preemptions.load(), 1u);
    EXPECT_EQ(out[0].n_preempted, 0) << "the oldest sequence keeps running";
    EXPECT_GE(out[1].n_preempted, 1);
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
}

TEST(Scheduler, ContextLimitEndsTheSequence) {
    fake_runner fr(1, 8, 0);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    sch.submit(greedy({1, 2, 3}, 100, out, 0));
    sch.run_until_idle();
    EXPECT_EQ(out[0].stop, edgellm::engine::stop_reason::context);
    EXPECT_EQ(out[0].tokens.size(), 6u);  // positions 3..7 decoded, the 6th token has no room
}

TEST(Scheduler, BadRequestsAreRefusedAtSubmit) {
    fake_runner fr(1, 32, 0);
    std::map<int, sequence_result> out;
    scheduler sch(fr, scheduler_params{});
    EXPECT_THROW(sch.submit(greedy({}, 4, out, 0)), usage_error);
    EXPECT_THROW(sch.submit(greedy(std::vector<int32_t>(32, 1), 4, out, 0)), usage_error);
    EXPECT_THROW(sch.submit(greedy({99}, 4, out, 0)), usage_error);
    EXPECT_THROW(sch.submit(greedy({1}, 0, out, 0)), usage_error);
    request bad_temp = greedy({1}, 4, out, 0);
    bad_temp.gp.sampling.top_p = -1;
    EXPECT_THROW(sch.submit(std::move(bad_temp)), usage_error);
}

TEST(Scheduler, FullQueueIsRefused) {
    fake_runner fr(1, 32, 0);
    std::map<int, sequence_result> out;
    scheduler_params sp;
    sp.max_queue = 2;
    scheduler sch(fr, sp);
    sch.submit(greedy({1}, 4, out, 0));
    sch.submit(greedy({1}, 4, out, 1));
    EXPECT_THROW(sch.submit(greedy({1}, 4, out, 2)), engine::queue_full);
    EXPECT_EQ(sch.metrics().requests_rejected.load(), 1u);
    sch.step();  // one admitted: room again
    sch.submit(greedy({1}, 4, out, 3));
    sch.run_until_idle();
    EXPECT_EQ(out.size(), 3u);
}

TEST(Scheduler, PinnedSlotReusesItsCachedPrefix) {
    fake_runner fr(1, 64, 0);
    std::map<int, sequence_result> out;
    {
        scheduler sch(fr, scheduler_params{});
        request r = greedy({1, 2, 3, 4}, 3, out, 0);
        r.slot = 0;
        sch.submit(std::move(r));
        sch.run_until_idle();
    }
    EXPECT_EQ(fr.kv().seq_len(0), 6) << "a pinned slot keeps prompt + decoded tokens";
    scheduler sch(fr, scheduler_params{});
    request r = greedy({1, 2, 3, 4, 5, 6, 9, 9}, 2, out, 1);
    r.slot = 0;
    r.n_cached = 6;
    const size_t before = fr.steps.size();
    sch.submit(std::move(r));
    sch.run_until_idle();
    EXPECT_EQ(out[1].n_cached, 6);
    EXPECT_EQ(fr.steps[before].size(), 2u) << "only the two new prompt tokens are evaluated";
    EXPECT_EQ(out[1].tokens, counting(9, 2));
}

TEST(Scheduler, ServeRunsOnItsOwnThreadAndStops) {
    fake_runner fr(2, 64, 0);
    std::map<int, sequence_result> out;
    std::mutex mu;
    scheduler sch(fr, scheduler_params{});
    std::thread loop([&] { sch.serve(); });
    std::atomic<int> done{0};
    for (int i = 0; i < 4; ++i) {
        request r = greedy({int32_t(i)}, 5, out, i);
        r.on_done = [&, i](const sequence_result& res) {
            std::lock_guard lock(mu);
            out[i] = res;
            ++done;
        };
        sch.submit(std::move(r));
    }
    for (int i = 0; i < 500 && done < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    sch.stop();
    loop.join();
    ASSERT_EQ(done.load(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i].tokens, counting(i, 5));
}

}  // namespace
}  // namespace edgellm

namespace edgellm {
namespace {

// The one mapping of how a sequence ended to the APIs' names (engine/stop_reason.h): OpenAI's
// finish_reason is one of its own values for every reason (a cancellation or a shutdown cuts
// the reply short: "length", never "cancelled"), tool calls only on a reply that ended on its
// own, a stop string the caller matched wins over the cancellation the scheduler saw.
TEST(StopReason, OneMappingToTheApisFinishReasons) {
    using engine::stop_reason;
    const std::set<std::string> openai = {"stop", "length", "tool_calls", "error"};
    for (stop_reason r : {stop_reason::none, stop_reason::eos, stop_reason::stop_string, stop_reason::length,
                          stop_reason::context, stop_reason::cancelled, stop_reason::error}) {
        SCOPED_TRACE(engine::name(r));
        EXPECT_TRUE(openai.count(engine::openai_finish_reason(r)));
        EXPECT_TRUE(openai.count(engine::openai_finish_reason(r, true)));
        EXPECT_STREQ(engine::ollama_done_reason(r), engine::openai_finish_reason(r));
    }
    EXPECT_STREQ(engine::openai_finish_reason(stop_reason::eos), "stop");
    EXPECT_STREQ(engine::openai_finish_reason(stop_reason::stop_string), "stop");
    EXPECT_STREQ(engine::openai_finish_reason(stop_reason::eos, true), "tool_calls");
    EXPECT_STREQ(engine::openai_finish_reason(stop_reason::length, true), "length");
    EXPECT_STREQ(engine::openai_finish_reason(stop_reason::context), "length");
    EXPECT_STREQ(engine::openai_finish_reason(stop_reason::cancelled), "length");
    EXPECT_STREQ(engine::name(stop_reason::eos), "eos");
    EXPECT_STREQ(engine::name(stop_reason::context), "context");
    EXPECT_EQ(engine::with_stop_string(stop_reason::cancelled, true), stop_reason::stop_string);
    EXPECT_EQ(engine::with_stop_string(stop_reason::error, true), stop_reason::error);
    EXPECT_EQ(engine::with_stop_string(stop_reason::length, false), stop_reason::length);
}

}  // namespace
}  // namespace edgellm
