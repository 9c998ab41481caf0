// Automatic prefix caching: the KV cache's block hashing, reference-counted sharing, LRU
// eviction of unreferenced cached blocks and copy-on-write, and the scheduler reusing cached
// prefixes across requests. The fake runner here writes each position's token and position into
// the KV cache and computes the next token from what it reads back through the block table, so
// a block shared, copied or evicted wrongly changes the output.
#include <gtest/gtest.h>

#include "fake_runners.h"

namespace edgellm {
namespace {

using namespace edgellm::testing;

// Fills `seq` with `tokens` (rows {token, position}) and registers its full blocks.
void fill(model::kv_cache& kv, int seq, const std::vector<int32_t>& tokens) {
    ASSERT_TRUE(kv.reserve(seq, static_cast<int64_t>(tokens.size())));
    for (size_t p = kv.seq_len(seq); p < tokens.size(); ++p) {
        const float row[2] = {float(tokens[p]), float(p)};
        for (int64_t il = 0; il < kv.n_layer(); ++il) kv.store(il, seq, static_cast<int64_t>(p), row, row);
    }
    kv.extend(seq, static_cast<int64_t>(tokens.size()));
    kv.cache_blocks(seq, tokens);
}

float row0(const model::kv_cache& kv, int seq, int64_t pos, int64_t il = 0) {
    return static_cast<const float*>(kv.view(il, seq).k_row(pos))[0];
}

TEST(PrefixCache, BlockHashNamesTheWholePrefix) {
    const auto a = tokens_from(1, B);
    const auto b = tokens_from(2, B);
    EXPECT_EQ(model::kv_cache::block_hash(7, a), model::kv_cache::block_hash(7, a));
    EXPECT_NE(model::kv_cache::block_hash(7, a), model::kv_cache::block_hash(8, a)) << "same tokens, other parent";
    EXPECT_NE(model::kv_cache::block_hash(7, a), model::kv_cache::block_hash(7, b));
}

TEST(PrefixCache, LeadingFullBlocksAreSharedReadOnly) {
    model::kv_cache kv(tiny_hparams(), 128, ggml_type::f32, 3, 0);
    const auto t = tokens_from(3, 40);  // two full blocks and a partial one
    fill(kv, 0, t);
    EXPECT_EQ(kv.n_cached_blocks(), 2) << "only full blocks are registered";
    auto other = t;
    other[35] = (other[35] + 1) % k_vocab;  // differs in the third block only
    EXPECT_EQ(kv.attach_prefix(1, other, 39), 2 * B);
    EXPECT_EQ(kv.seq_len(1), 2 * B);
    EXPECT_EQ(kv.block_refs(0, 0), 2);
    EXPECT_EQ(kv.block_refs(1, 31), 2);
    for (int64_t p = 0; p < 2 * B; ++p) EXPECT_EQ(row0(kv, 1, p), float(t[static_cast<size_t>(p)]));
    auto diverged = t;
    diverged[3] = (diverged[3] + 1) % k_vocab;  // differs in the first block: nothing to reuse
    EXPECT_EQ(kv.attach_prefix(2, diverged, 39), 0);
    EXPECT_THROW(kv.attach_prefix(1, t, 39), error) << "only an empty sequence takes a prefix";
    // Growing the sharer past the shared blocks takes fresh blocks; the shared ones stay shared.
    EXPECT_EQ(kv.blocks_needed(1, 2 * B + 1), 1);
    ASSERT_TRUE(kv.reserve(1, 2 * B + 1));
    EXPECT_EQ(kv.block_refs(1, 2 * B), 1);
    EXPECT_EQ(kv.block_refs(0, 0), 2);
    kv.clear(1);
    EXPECT_EQ(kv.block_refs(0, 0), 1);
}

TEST(PrefixCache, WritingIntoASharedBlockCopiesItFirst) {
    model::kv_cache kv(tiny_hparams(), 128, ggml_type::f32, 2, 0);
    const auto t = tokens_from(4, 2 * B);
    fill(kv, 0, t);
    // The whole prompt is cached, but its last position is evaluated again (its logits are needed).
    EXPECT_EQ(kv.attach_prefix(1, t, 2 * B - 1), 2 * B - 1);
    EXPECT_EQ(kv.block_refs(1, 2 * B - 1), 2);
    const int64_t free_before = kv.n_free_blocks();
    EXPECT_EQ(kv.blocks_needed(1, 2 * B), 1) << "the copy of the shared block";
    ASSERT_TRUE(kv.reserve(1, 2 * B));
    EXPECT_EQ(kv.n_free_blocks(), free_before - 1);
    EXPECT_EQ(kv.block_refs(1, 2 * B - 1), 1);
    EXPECT_EQ(kv.block_refs(0, 2 * B - 1), 1);
    EXPECT_EQ(kv.block_refs(1, 0), 2) << "the first block is still shared";
    const float mine[2] = {99, 2 * B - 1};
    kv.store(0, 1, 2 * B - 1, mine, mine);
    kv.store(1, 1, 2 * B - 1, mine, mine);
    kv.extend(1, 2 * B);
    EXPECT_EQ(row0(kv, 0, 2 * B - 1), float(t.back())) << "the owner's block is untouched";
    EXPECT_EQ(row0(kv, 1, 2 * B - 1), 99.0f);
    for (int64_t il = 0; il < 2; ++il)
        for (int64_t p = B; p < 2 * B - 1; ++p)
            EXPECT_EQ(row0(kv, 1, p, il), float(t[static_cast<size_t>(p)])) << "copied rows, layer " << il;
}

TEST(PrefixCache, WritingIntoOnesOwnCachedBlockDropsItsRegistration) {
    model::kv_cache kv(tiny_hparams(), 128, ggml_type::f32, 1, 0);
    const auto t = tokens_from(5, 2 * B);
    fill(kv, 0, t);
    EXPECT_EQ(kv.n_cached_blocks(), 2);
    kv.truncate(0, B + 4);  // a rollback into the second block
    EXPECT_EQ(kv.n_cached_blocks(), 2) << "its rows are still the cached ones";
    ASSERT_TRUE(kv.reserve(0, B + 5));
    EXPECT_EQ(kv.n_cached_blocks(), 1) << "about to be overwritten: no longer a cached prefix";
    EXPECT_EQ(kv.n_free_blocks(), kv.n_blocks() - 2) << "no copy was needed";
}

TEST(PrefixCache, UnreferencedCachedBlocksAreEvictedLeastRecentlyReleasedFirst) {
    model::kv_cache kv(tiny_hparams(), 64, ggml_type::f32, 2, 4 * B);  // a pool of 4 blocks
    const auto a = tokens_from(6, 2 * B);
    fill(kv, 0, a);
    kv.clear(0);
    EXPECT_EQ(kv.n_cached_blocks(), 2);
    EXPECT_EQ(kv.n_free_blocks(), 4) << "cached blocks nobody holds count as free";
    EXPECT_EQ(kv.n_used_blocks(), 0);
    // Three blocks for another sequence: the two free ones, then the older cached one, which is
    // a's second block (a sequence's blocks are released last to first).
    ASSERT_TRUE(kv.reserve(1, 3 * B));
    EXPECT_EQ(kv.n_cached_blocks(), 1);
    EXPECT_EQ(kv.attach_prefix(0, a, 2 * B - 1), B) << "a's first block survived";
    EXPECT_EQ(kv.n_free_blocks(), 0);
    EXPECT_FALSE(kv.reserve(0, B + 1)) << "nothing left: referenced blocks are never evicted";
    kv.clear(0);
    kv.clear(1);
    EXPECT_EQ(kv.n_free_blocks(), 4);
    kv.set_prefix_caching(false);
    EXPECT_EQ(kv.n_cached_blocks(), 0);
    EXPECT_EQ(kv.attach_prefix(0, a, 2 * B - 1), 0);
}

TEST(PrefixCache, SecondRequestReusesTheSharedPrefixWithTheSameOutput) {
    history_runner fr(2, 256, 0);
    scheduler sch(fr, scheduler_params{});
    std::map<int, sequence_result> out;
    auto first = tokens_from(7, 40);
    auto second = first;
    second.resize(36);
    second.push_back(3);
    second.push_back(9);
    sch.submit(greedy(first, 6, out, 0));
    sch.run_until_idle();
    EXPECT_EQ(out[0].n_cached, 0);
    EXPECT_EQ(out[0].tokens, uncached(first, 6));
    const int64_t evaluated = fr.n_tokens;
    sch.submit(greedy(second, 6, out, 1));
    sch.run_until_idle();
    EXPECT_EQ(out[1].n_cached, 2 * B);
    EXPECT_EQ(out[1].tokens, uncached(second, 6));
    EXPECT_EQ(fr.n_tokens - evaluated, static_cast<int64_t>(second.size()) - 2 * B + 5)
        << "only the uncached prompt tokens and the decoded ones were evaluated";
    EXPECT_EQ(sch.metrics().prefix_hit_tokens.load(), static_cast<uint64_t>(2 * B));
    EXPECT_EQ(sch.metrics().prefix_hit_blocks.load(), 2u);
    EXPECT_GE(sch.metrics().kv_blocks_cached.load(), 2);
    // The same prompt again (a block-aligned one): all but its last token come from the cache.
    const auto aligned = tokens_from(8, 3 * B);
    sch.submit(greedy(aligned, 4, out, 2));
    sch.run_until_idle();
    sch.submit(greedy(aligned, 4, out, 3));
    sch.run_until_idle();
    EXPECT_EQ(out[3].n_cached, 3 * B - 1);
    EXPECT_EQ(out[3].tokens, out[2].tokens);
    EXPECT_EQ(out[3].tokens, uncached(aligned, 4));
    // A request that opts out evaluates everything.
    request r = greedy(aligned, 4, out, 4);
    r.reuse_prefix = false;
    sch.submit(std::move(r));
    sch.run_until_idle();
    EXPECT_EQ(out[4].n_cached, 0);
    EXPECT_EQ(out[4].tokens, out[2].tokens);
}

TEST(PrefixCache, ConcurrentSequencesShareCachedBlocksAndDiverge) {
    history_runner fr(4, 256, 0);
    scheduler_params sp;
    sp.n_batch = 24;  // prompts are prefilled in chunks while others decode
    scheduler sch(fr, sp);
    std::map<int, sequence_result> out;
    const auto system = tokens_from(9, 3 * B + 5);  // a shared "system prompt"
    sch.submit(greedy(system, 3, out, 0));
    sch.run_until_idle();
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 4; ++i) {
        auto p = system;
        const auto tail = tokens_from(20 + static_cast<uint32_t>(i), 10 + 7 * static_cast<size_t>(i));
        p.insert(p.end(), tail.begin(), tail.end());
        prompts.push_back(p);
        sch.submit(greedy(p, 20, out, 1 + i));
    }
    sch.run_until_idle();
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(out[1 + i].n_cached, 3 * B) << "request " << i;
        EXPECT_EQ(out[1 + i].tokens, uncached(prompts[static_cast<size_t>(i)], 20)) << "request " << i;
    }
    // Two requests for the same cached, block-aligned prompt at once: both take its last block,
    // and both write their last prompt position into it, so each writes into a copy.
    const std::vector<int32_t> aligned(system.begin(), system.begin() + 3 * B);
    sch.submit(greedy(aligned, 5, out, 10));
    sch.submit(greedy(aligned, 5, out, 11));
    sch.run_until_idle();
    const auto expected = uncached(aligned, 5);
    for (int k : {10, 11}) {
        EXPECT_EQ(out[k].n_cached, 3 * B - 1);
        EXPECT_EQ(out[k].tokens, expected);
    }
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
}

TEST(PrefixCache, ASmallPoolEvictsCachedPrefixesAndPreemptsWithoutChangingOutputs) {
    // 8 blocks for 3 sequences of up to 64 positions: cached blocks are evicted to make room, and
    // running sequences that share blocks are preempted and recomputed.
    history_runner fr(3, 64, 8 * B);
    scheduler_params sp;
    sp.n_batch = 16;
    scheduler sch(fr, sp);
    std::map<int, sequence_result> out;
    std::vector<std::vector<int32_t>> prompts;
    const auto shared = tokens_from(30, 2 * B);
    for (int i = 0; i < 9; ++i) {
        auto p = i % 3 == 0 ? tokens_from(40 + static_cast<uint32_t>(i), 2 * B) : shared;
        const auto tail = tokens_from(50 + static_cast<uint32_t>(i), 5 + static_cast<size_t>(i));
        p.insert(p.end(), tail.begin(), tail.end());
        prompts.push_back(p);
        sch.submit(greedy(p, 16, out, i));
    }
    sch.run_until_idle();
    int64_t reused = 0;
    for (int i = 0; i < 9; ++i) {
        EXPECT_EQ(out[i].stop, edgellm::engine::stop_reason::length) << "request " << i << ": " << out[i].error;
        EXPECT_EQ(out[i].tokens, uncached(prompts[static_cast<size_t>(i)], 16)) << "request " << i;
        reused += out[i].n_cached;
    }
    EXPECT_GT(reused, 0) << "the shared prefix was reused at least once";
    EXPECT_GT(sch.metrics().preemptions.load(), 0u) << "the pool was meant to run short";
    EXPECT_EQ(fr.kv().n_used_blocks(), 0);
}

}  // namespace
}  // namespace edgellm
