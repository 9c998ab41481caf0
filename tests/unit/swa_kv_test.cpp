// Window-sized KV for sliding-window layers (model::kv_cache with a window pool): blocks older than
// the window are released, rollback works within the slack and is refused past it, prefix caching
// and copy-on-write still hold, bytes_for counts the window pool, and the scheduler's output with
// the window-sized cache equals the full cache's (several sequences, n-gram drafts with rollback,
// prefix reuse across requests) through a fake runner that reads the window back through the
// block tables.
#include <gtest/gtest.h>

#include <algorithm>

#include "fake_runners.h"
#include "test_util.h"

namespace edgellm {
namespace {

using namespace edgellm::testing;
constexpr int64_t W = 40;  // the tiny model's window

// Layer 0 has a sliding window of W positions, layer 1 attends to everything.
model::model_hparams swa_hparams() {
    model::model_hparams hp = tiny_hparams();
    hp.n_swa = W;
    hp.swa_pattern = 2;
    return hp;
}

// Writes rows {token, position} for positions seq_len..n-1 in one step, as the forward pass does.
void step(model::kv_cache& kv, int seq, const std::vector<int32_t>& tokens, int64_t n) {
    ASSERT_TRUE(kv.reserve(seq, n));
    for (int64_t p = kv.seq_len(seq); p < n; ++p) {
        const float row[2] = {float(tokens[static_cast<size_t>(p)]), float(p)};
        for (int64_t il = 0; il < kv.n_layer(); ++il) kv.store(il, seq, p, row, row);
    }
    kv.extend(seq, n);
}

// Checks layer il holds seq's rows for positions [from, to).
void expect_rows(const model::kv_cache& kv, int64_t il, int seq, const std::vector<int32_t>& tokens, int64_t from,
                 int64_t to) {
    const kernels::kv_view v = kv.view(il, seq);
    for (int64_t p = from; p < to; ++p) {
        const float* r = static_cast<const float*>(v.k_row(p));
        ASSERT_EQ(r[0], float(tokens[static_cast<size_t>(p)])) << "layer " << il << " position " << p;
        ASSERT_EQ(r[1], float(p)) << "layer " << il << " position " << p;
    }
}

TEST(SwaKv, BytesForCountTheWindowPoolOfGemma3Like) {
    model::model_hparams hp = test::gemma3_270m_kv_hparams();
    const uint64_t per_pos_layer = 2 * 256 * 2;  // K and V rows of 256 f16
    const uint64_t full = 3 * 32768 * per_pos_layer;
    // Per sequence and window layer: window 512 + step 512 - 1 + slack 64 = 1087 positions -> 68
    // blocks, plus one block of alignment: 69 blocks of 16 = 1104 positions.
    const uint64_t swa = 15 * 1104 * per_pos_layer;
    EXPECT_EQ(model::kv_cache::bytes_for(hp, 32768, ggml_type::f16, 1, 0), full + swa);
    EXPECT_EQ(full + swa, 117620736u);  // 112.2 MiB (llama.cpp: 96 MiB + 15 MiB for 1024 cells)
    EXPECT_EQ(model::kv_cache::bytes_for(hp, 32768, ggml_type::f16, 1, 0, /*swa_full=*/true), 603979776u);
    // n_cells sizes the full-attention pool; the window pool is per sequence.
    EXPECT_EQ(model::kv_cache::bytes_for(hp, 32768, ggml_type::f16, 4, 8192), 3 * 8192 * per_pos_layer + 4 * swa);
    // A context within window + step: the window pool is as large as the context.
    EXPECT_EQ(model::kv_cache::bytes_for(hp, 512, ggml_type::f16, 1, 0), 18 * 512 * per_pos_layer);
    model::kv_cache kv(hp, 32768, ggml_type::f16, 1, 0);
    EXPECT_TRUE(kv.windowed());
    EXPECT_EQ(kv.size_bytes(), full + swa);
    model::kv_cache kv_full(hp, 32768, ggml_type::f16, 1, 0, /*swa_full=*/true);
    EXPECT_FALSE(kv_full.windowed());
    EXPECT_EQ(kv_full.size_bytes(), 603979776u);
    // No sliding window: one pool, as before.
    hp.n_swa = 0;
    EXPECT_EQ(model::kv_cache::bytes_for(hp, 32768, ggml_type::f16, 1, 0), 18 * 32768 * per_pos_layer);
}

TEST(SwaKv, BlocksOutsideTheWindowAreReleased) {
    model::kv_cache kv(swa_hparams(), 2048, ggml_type::f32, 2, 0);
    ASSERT_TRUE(kv.windowed());
    const int64_t per_seq = model::kv_cache::swa_seq_blocks(W, 2048);
    EXPECT_EQ(kv.n_swa_blocks(), 2 * per_seq);
    EXPECT_LT(per_seq, 2048 / B);
    const auto t = tokens_from(5, 2048);
    // Decode-like steps of 1..7 positions up to 1500: the window layer never holds more than its
    // share, the full layer everything.
    int64_t n = 0, held_max = 0;
    for (int i = 0; n < 1500; ++i) {
        n = std::min<int64_t>(1500, n + 1 + i % 7);
        step(kv, 0, t, n);
        held_max = std::max(held_max, kv.n_swa_blocks() - kv.n_free_swa_blocks());
        expect_rows(kv, 0, 0, t, std::max<int64_t>(0, n - W), n);  // the next query's window
    }
    EXPECT_LE(held_max, per_seq);
    EXPECT_LE(held_max, model::kv_cache::blocks_for(W + model::k_kv_swa_slack + 8) + 1);
    expect_rows(kv, 1, 0, t, 0, 1500);
    EXPECT_EQ(kv.layer_block_refs(0, 0, 0), 0) << "position 0 left the window long ago";
    EXPECT_EQ(kv.layer_block_refs(1, 0, 0), 1);
    EXPECT_EQ(kv.layer_block_refs(0, 0, 1499), 1);
    const float row[2] = {1, 2};
    EXPECT_THROW(kv.store(0, 0, 100, row, row), error) << "a released block is never written";
    // Clearing gives every block back.
    kv.clear(0);
    EXPECT_EQ(kv.n_free_swa_blocks(), kv.n_swa_blocks());
    EXPECT_EQ(kv.n_free_blocks(), kv.n_blocks());
}

TEST(SwaKv, ReserveGivesTheWindowPoolOneStepAtATime) {
    model::kv_cache kv(swa_hparams(), 2048, ggml_type::f32, 1, 0);
    ASSERT_TRUE(kv.reserve(0, 2000));
    EXPECT_EQ(kv.n_used_blocks(), model::kv_cache::blocks_for(2000)) << "the full pool gets every block at once";
    EXPECT_EQ(kv.n_swa_blocks() - kv.n_free_swa_blocks(), model::kv_cache::blocks_for(model::k_kv_swa_step));
    EXPECT_THROW(kv.extend(0, 2000), error) << "the window layer has blocks for one step only";
    const auto t = tokens_from(6, 2000);
    for (int64_t n = model::k_kv_swa_step; n <= 2000; n = std::min<int64_t>(2000, n + model::k_kv_swa_step)) {
        step(kv, 0, t, n);  // what the forward pass does before each step
        expect_rows(kv, 0, 0, t, n - W, n);
        if (n == 2000) break;
    }
    expect_rows(kv, 1, 0, t, 0, 2000);
}

TEST(SwaKv, RollbackWithinTheSlackWorksAndPastItIsRefused) {
    model::kv_cache kv(swa_hparams(), 2048, ggml_type::f32, 1, 0);
    const auto t = tokens_from(7, 2048);
    for (int64_t n = 1; n <= 600; ++n) step(kv, 0, t, n);
    // Roll back as speculative decoding does (up to the slack), then grow again with other tokens.
    auto u = t;
    for (int64_t back : {int64_t{1}, int64_t{9}, model::k_kv_swa_slack}) {
        ASSERT_TRUE(kv.can_truncate(0, 600 - back));
        kv.truncate(0, 600 - back);
        expect_rows(kv, 0, 0, u, 600 - back - W + 1, 600 - back);
        for (int64_t p = 600 - back; p < 600; ++p) u[static_cast<size_t>(p)] = (u[static_cast<size_t>(p)] + 3) % k_vocab;
        step(kv, 0, u, 600);
        expect_rows(kv, 0, 0, u, 600 - W, 600);
        expect_rows(kv, 1, 0, u, 0, 600);
    }
    // Past the slack: the window of position 400 is gone.
    EXPECT_FALSE(kv.can_truncate(0, 400));
    try {
        kv.truncate(0, 400);
        FAIL() << "rolled back past the window";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("sliding-window"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--swa-full"), std::string::npos) << e.what();
    }
    EXPECT_EQ(kv.seq_len(0), 600) << "a refused rollback changes nothing";
    EXPECT_TRUE(kv.can_truncate(0, 0));
    kv.truncate(0, 0);
    // The full cache rolls back anywhere.
    model::kv_cache full(swa_hparams(), 2048, ggml_type::f32, 1, 0, /*swa_full=*/true);
    for (int64_t n = 1; n <= 600; ++n) step(full, 0, t, n);
    EXPECT_TRUE(full.can_truncate(0, 400));
    full.truncate(0, 400);
    expect_rows(full, 0, 0, t, 0, 400);
}

TEST(SwaKv, PrefixReuseNeedsTheWindowPoolsBlocksToo) {
    model::kv_cache kv(swa_hparams(), 2048, ggml_type::f32, 3, 0);
    const auto t = tokens_from(8, 700);
    // Sequence 0 grows to 400 in one-position steps and registers its blocks only at the end:
    // its early window blocks were released unregistered.
    for (int64_t n = 1; n <= 400; ++n) step(kv, 0, t, n);
    const std::vector<int32_t> first(t.begin(), t.begin() + 400);
    kv.cache_blocks(0, first);
    kv.clear(0);
    EXPECT_EQ(kv.n_cached_blocks(), 25);
    // A prompt sharing the first 200 tokens: the full pool has them, the window pool not the
    // window before position 192, so nothing is reused.
    auto early = t;
    early[200] = (early[200] + 1) % k_vocab;
    EXPECT_EQ(kv.attach_prefix(1, early, 699), 0);
    EXPECT_EQ(kv.seq_len(1), 0);
    EXPECT_EQ(kv.n_free_blocks(), kv.n_blocks()) << "nothing attached";
    // The whole 400: the window before 400 is cached in both pools.
    auto later = t;
    later[405] = (later[405] + 1) % k_vocab;
    ASSERT_EQ(kv.attach_prefix(2, later, 699), 400);
    EXPECT_EQ(kv.layer_block_refs(0, 2, 399), 1);
    EXPECT_EQ(kv.layer_block_refs(0, 2, 0), 0) << "blocks before the window are not attached";
    expect_rows(kv, 0, 2, t, 400 - W, 400);
    expect_rows(kv, 1, 2, t, 0, 400);
    // It continues with its own tokens; the reused rows stay.
    for (int64_t n = 401; n <= 450; ++n) step(kv, 2, later, n);
    expect_rows(kv, 0, 2, later, 450 - W, 450);
    expect_rows(kv, 1, 2, later, 0, 450);
}

TEST(SwaKv, SharedWindowBlocksAreCopiedBeforeWriting) {
    model::kv_cache kv(swa_hparams(), 2048, ggml_type::f32, 2, 0);
    const auto t = tokens_from(9, 48);
    step(kv, 0, t, 40);
    kv.cache_blocks(0, t);
    // Sequence 1 takes 31 positions: blocks 0 and 1, the second one shared part-filled.
    ASSERT_EQ(kv.attach_prefix(1, t, 31), 31);
    for (int64_t il : {0, 1}) EXPECT_EQ(kv.layer_block_refs(il, 1, 30), 2) << "layer " << il;
    auto u = t;
    u[31] = (u[31] + 5) % k_vocab;
    step(kv, 1, u, 32);
    for (int64_t il : {0, 1}) {
        EXPECT_EQ(kv.layer_block_refs(il, 1, 31), 1) << "layer " << il << ": a copy of its own";
        EXPECT_EQ(kv.layer_block_refs(il, 0, 31), 1) << "layer " << il;
        expect_rows(kv, il, 1, u, 0, 32);
        expect_rows(kv, il, 0, t, 0, 40);  // the other sequence's block is untouched
    }
}

// The history runner of fake_runners.h with a window: the next token is a sum over the window
// of layer 0 and over everything in layer 1, read back through the block tables, so a row
// released, evicted, shared or rolled back wrongly changes the output.
class window_runner : public engine::step_runner {
public:
    window_runner(int n_seq, int64_t n_ctx, bool swa_full) : kv_(swa_hparams(), n_ctx, ggml_type::f32, n_seq, 0, swa_full) {}
    int64_t n_vocab() const override { return k_vocab; }
    model::kv_cache& kv() override { return kv_; }
    std::span<const float> eval(const model::batch& b) override {
        std::map<int32_t, int64_t> end;
        for (size_t i = 0; i < b.size(); ++i) end[b.seq_ids[i]] = b.positions[i] + 1;
        for (const auto& [s, n] : end) EXPECT_TRUE(kv_.reserve(s, n));
        for (size_t i = 0; i < b.size(); ++i) {
            const float r[2] = {float(b.tokens[i]), float(b.positions[i])};
            for (int64_t il = 0; il < 2; ++il) kv_.store(il, b.seq_ids[i], b.positions[i], r, r);
        }
        for (const auto& [s, n] : end) kv_.extend(s, n);
        logits_.assign(static_cast<size_t>(b.n_outputs()) * k_vocab, 0.0f);
        size_t out = 0;
        for (size_t i = 0; i < b.size(); ++i) {
            if (!b.want_logits[i]) continue;
            const int32_t s = b.seq_ids[i];
            const int64_t pos = b.positions[i];
            if (kv_.windowed() && pos > 200 && kv_.layer_block_refs(0, s, 0) == 0) ++released_seen;
            const kernels::kv_view v0 = kv_.view(0, s), v1 = kv_.view(1, s);
            int64_t sum = 0;
            for (int64_t p = std::max<int64_t>(0, pos + 1 - W); p <= pos; ++p) {
                const float* r = static_cast<const float*>(v0.k_row(p));
                EXPECT_EQ(r[1], float(p));
                sum += (p % 5 + 1) * static_cast<int64_t>(r[0]);
            }
            for (int64_t p = 0; p <= pos; ++p) {
                const float* r = static_cast<const float*>(v1.k_row(p));
                EXPECT_EQ(r[1], float(p));
                sum += static_cast<int64_t>(r[0]) * (p % 3);
            }
            logits_[out++ * k_vocab + static_cast<size_t>(sum % k_vocab)] = 1.0f;
        }
        return logits_;
    }
    int64_t released_seen = 0;

private:
    model::kv_cache kv_;
    std::vector<float> logits_;
};

struct swa_run {
    std::map<int, sequence_result> out;
    int64_t released_seen = 0;
    uint64_t drafted = 0;
};

// Two waves of 3 requests on 3 slots: long prompts (past window + slack), n-gram drafts; the
// second wave's prompts extend the first wave's (prefix reuse).
swa_run run_waves(bool swa_full) {
    window_runner fr(3, 1024, swa_full);
    scheduler_params sp;
    sp.n_batch = 96;
    sp.spec.ngram = 2;
    sp.spec.draft_max = 6;
    scheduler sch(fr, sp);
    swa_run r;
    std::vector<std::vector<int32_t>> first;
    for (int i = 0; i < 3; ++i) {
        auto p = tokens_from(30 + static_cast<uint32_t>(i), 300 + 70 * static_cast<size_t>(i));
        p.insert(p.end(), p.begin() + 10, p.begin() + 40);  // a repeated stretch: drafts get accepted
        first.push_back(p);
        sch.submit(greedy(p, 60, r.out, i));
    }
    sch.run_until_idle();
    for (int i = 0; i < 3; ++i) {
        auto p = first[static_cast<size_t>(i)];
        const auto& gen = r.out.at(i).tokens;
        p.insert(p.end(), gen.begin(), gen.end());  // the next turn resends the history
        const auto extra = tokens_from(90 + static_cast<uint32_t>(i), 20);
        p.insert(p.end(), extra.begin(), extra.end());
        sch.submit(greedy(p, 40, r.out, 3 + i));
    }
    sch.run_until_idle();
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
    r.released_seen = fr.released_seen;
    r.drafted = sch.metrics().draft_tokens;
    return r;
}

TEST(SwaKv, SchedulerOutputEqualsTheFullCache) {
    const swa_run full = run_waves(true);
    const swa_run win = run_waves(false);
    ASSERT_EQ(full.out.size(), 6u);
    ASSERT_EQ(win.out.size(), 6u);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(win.out.at(i).tokens, full.out.at(i).tokens) << "request " << i;
        EXPECT_EQ(win.out.at(i).tokens.size(), i < 3 ? 60u : 40u) << "request " << i;
    }
    EXPECT_GT(win.released_seen, 0) << "the window pool released blocks";
    EXPECT_GT(win.drafted, 0u) << "drafts (and their rollback) ran";
    int64_t cached = 0;
    for (int i = 3; i < 6; ++i) {
        EXPECT_EQ(win.out.at(i).n_cached, full.out.at(i).n_cached) << "request " << i << ": the same prefix reuse";
        cached += win.out.at(i).n_cached;
    }
    EXPECT_GT(cached, 0) << "the second turn reused the first turn's KV";
}

// A pinned slot (the GPU path's chat) whose cached prefix lies behind the window: the
// window-sized cache cannot roll back to it, so the prompt runs whole, with the same output.
TEST(SwaKv, APinnedSlotBehindTheWindowRunsItsPromptWhole) {
    std::map<bool, std::map<int, sequence_result>> out;
    for (bool swa_full : {true, false}) {
        window_runner fr(1, 1024, swa_full);
        scheduler sch(fr, scheduler_params{});
        auto first = tokens_from(40, 700);
        request a = greedy(first, 10, out[swa_full], 0);
        a.slot = 0;
        sch.submit(std::move(a));
        sch.run_until_idle();
        auto second = first;
        second.resize(300);
        const auto tail = tokens_from(41, 50);
        second.insert(second.end(), tail.begin(), tail.end());
        request b = greedy(second, 10, out[swa_full], 1);
        b.slot = 0;
        b.n_cached = 300;
        sch.submit(std::move(b));
        sch.run_until_idle();
        EXPECT_EQ(fr.kv().can_truncate(0, 100), swa_full);
    }
    EXPECT_EQ(out[true].at(1).n_cached, 300);
    EXPECT_EQ(out[false].at(1).n_cached, 0) << "the window before position 300 is gone: nothing reused";
    for (int i : {0, 1}) EXPECT_EQ(out[false].at(i).tokens, out[true].at(i).tokens) << "request " << i;
    EXPECT_EQ(out[false].at(1).tokens.size(), 10u);
}

}  // namespace
}  // namespace edgellm
