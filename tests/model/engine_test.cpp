// Engine behaviour: the stories260K golden greedy run, prefill chunking and decode agreeing with
// one full pass, several sequences in one batch, KV rollback, thread-count independence, and
// clear errors for bad requests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/batch_generate.h"
#include "engine/engine.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model_fixture.h"
#include "test_util.h"

namespace edgellm::test {
namespace {

float max_abs_diff(const float* a, const float* b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
}

std::filesystem::path tiny_model(const std::string& tag, tiny_model_spec s = {}) {
    const auto path = temp_dir(tag) / "m.gguf";
    write_tiny_model(s, path);
    return path;
}

const std::vector<int32_t> k_prompt = {1, 5, 17, 33, 2, 60, 9, 9, 41, 12, 3, 66, 0, 25, 7, 18, 50};

TEST(EngineGolden, Stories260KGreedyFromBosMatchesReference) {
    EDGELLM_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
    EDGELLM_REQUIRE_SHARED(ids_path, "models/stories260K.greedy.ids.txt");
    const std::vector<int32_t> want = read_ids(ids_path);
    ASSERT_EQ(want.size(), 256u);
    engine::engine_params ep;
    ep.model_path = model_path.string();
    ep.n_threads = 2;
    engine::engine eng(ep);
    engine::generation_params gp;
    gp.n_predict = 256;
    gp.sampling.temperature = 0;
    std::vector<int32_t> got;
    auto st = eng.generate(std::vector<int32_t>{eng.hparams().bos_id}, gp, [&](int32_t t) {
        got.push_back(t);
        return true;
    });
    EXPECT_EQ(got, want);
    EXPECT_EQ(st.stop, edgellm::engine::stop_reason::length);
    EXPECT_EQ(st.n_gen(), 256);
    EXPECT_EQ(st.n_prompt, 1);
    EXPECT_GT(st.kv_bytes, 0u);
    EXPECT_GT(st.peak_rss_bytes, 0u);
}

// Prefill in steps of 1, 3, 7 tokens and one step must all give the logits of a single pass,
// and decoding token by token must match too: batching is an implementation detail.
TEST(EngineForward, ChunkedPrefillAndDecodeMatchOnePass) {
    for (const char* arch : {"llama", "qwen2", "qwen3"}) {
        tiny_model_spec s;
        s.arch = arch;
        const auto path = tiny_model(std::string("chunk-") + arch, s);
        engine::engine_params ep;
        ep.model_path = path.string();
        ep.n_threads = 2;
        ep.kv_type = ggml_type::f32;
        engine::engine ref(ep);
        const std::vector<float> want = ref.all_logits(k_prompt);
        const size_t n_vocab = static_cast<size_t>(ref.hparams().n_vocab);
        ASSERT_EQ(want.size(), k_prompt.size() * n_vocab);
        for (float v : want) ASSERT_TRUE(std::isfinite(v));
        for (int64_t nb : {1, 3, 7}) {
            ep.n_batch = nb;
            engine::engine eng(ep);
            const std::vector<float> got = eng.all_logits(k_prompt);
            EXPECT_LT(max_abs_diff(got.data(), want.data(), want.size()), 1e-4f) << arch << " n_batch=" << nb;
        }
        // Token-by-token decode through the lower-level API.
        engine::engine eng(ep);
        model::batch b;
        for (size_t i = 0; i < k_prompt.size(); ++i) {
            b.clear();
            b.add(k_prompt[i], static_cast<int64_t>(i), 0, true);
            auto logits = eng.forward().eval(eng.kv_mut(), b);
            EXPECT_LT(max_abs_diff(logits.data(), &want[i * n_vocab], n_vocab), 1e-4f) << arch << " pos " << i;
        }
    }
}

// Two sequences interleaved in one batch get the same logits as each evaluated alone.
TEST(EngineForward, SequencesInOneBatchAreIndependent) {
    const auto path = tiny_model("multiseq");
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.kv_type = ggml_type::f32;
    ep.n_seq = 2;
    engine::engine eng(ep);
    const std::vector<int32_t> a = {1, 4, 9, 16, 25};
    const std::vector<int32_t> other = {1, 8, 27, 64};
    const std::vector<float> want_a = eng.all_logits(a);
    const std::vector<float> want_b = eng.all_logits(other);
    const size_t n_vocab = static_cast<size_t>(eng.hparams().n_vocab);

    eng.kv_mut().clear_all();
    model::batch b;
    for (size_t i = 0; i < 5; ++i) {
        b.add(a[i], static_cast<int64_t>(i), 0, true);
        if (i < other.size()) b.add(other[i], static_cast<int64_t>(i), 1, true);
    }
    auto logits = eng.forward().eval(eng.kv_mut(), b);
    size_t out = 0;
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_LT(max_abs_diff(&logits[out++ * n_vocab], &want_a[i * n_vocab], n_vocab), 1e-4f) << "seq 0 pos " << i;
        if (i < other.size()) {
            EXPECT_LT(max_abs_diff(&logits[out++ * n_vocab], &want_b[i * n_vocab], n_vocab), 1e-4f) << "seq 1 pos " << i;
        }
    }
    EXPECT_EQ(eng.kv().seq_len(0), 5);
    EXPECT_EQ(eng.kv().seq_len(1), 4);
}

// Truncating a sequence and feeding different tokens gives the logits of the new history only.
TEST(EngineForward, KvRollbackForgetsDiscardedPositions) {
    const auto path = tiny_model("rollback");
    engine::engine_params ep;
    ep.model_path = path.string();
    engine::engine eng(ep);
    const std::vector<int32_t> base = {1, 10, 20, 30};
    std::vector<int32_t> alt = {1, 10, 44, 45, 46};
    const std::vector<float> want = eng.all_logits(alt);
    const size_t n_vocab = static_cast<size_t>(eng.hparams().n_vocab);

    eng.all_logits(base);
    eng.kv_mut().truncate(0, 2);
    model::batch b;
    for (size_t i = 2; i < alt.size(); ++i) b.add(alt[i], static_cast<int64_t>(i), 0, i + 1 == alt.size());
    auto logits = eng.forward().eval(eng.kv_mut(), b);
    EXPECT_LT(max_abs_diff(logits.data(), &want[(alt.size() - 1) * n_vocab], n_vocab), 1e-4f);
}

TEST(EngineForward, F16CacheStaysCloseToF32) {
    const auto path = tiny_model("kvtype");
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.kv_type = ggml_type::f32;
    const std::vector<float> want = engine::engine(ep).all_logits(k_prompt);
    ep.kv_type = ggml_type::f16;
    engine::engine eng(ep);
    const std::vector<float> got = eng.all_logits(k_prompt);
    // f16 keeps 11 significant bits: relative error ~5e-4 per K/V element, a little more after
    // the dot products; logits here are O(1).
    EXPECT_LT(max_abs_diff(got.data(), want.data(), want.size()), 2e-2f);
    EXPECT_EQ(eng.kv().size_bytes(), 2u * 2 * 128 * 32 * 2);  // K+V x layers x ctx x kv_dim x 2 bytes
}

TEST(EngineGenerate, SameSeedSameOutputAcrossThreadCounts) {
    const auto path = tiny_model("threads");
    engine::generation_params gp;
    gp.n_predict = 40;
    gp.ignore_eos = true;
    gp.sampling.temperature = 1.0f;
    gp.sampling.top_k = 0;
    gp.sampling.top_p = 0.9f;
    gp.sampling.min_p = 0.0f;
    gp.sampling.seed = 1234;
    std::vector<std::vector<int32_t>> runs;
    for (int nt : {1, 2, 3}) {
        engine::engine_params ep;
        ep.model_path = path.string();
        ep.n_threads = nt;
        engine::engine eng(ep);
        std::vector<int32_t> out;
        eng.generate(std::vector<int32_t>{1, 5, 6}, gp, [&](int32_t t) {
            out.push_back(t);
            return true;
        });
        runs.push_back(out);
    }
    EXPECT_EQ(runs[0].size(), 40u);
    EXPECT_EQ(runs[0], runs[1]);
    EXPECT_EQ(runs[0], runs[2]);
}

TEST(EngineGenerate, StopsAtContextEndAndOnCallback) {
    const auto path = tiny_model("ctxend");
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.n_ctx = 10;
    engine::engine eng(ep);
    engine::generation_params gp;
    gp.n_predict = 100;
    gp.ignore_eos = true;
    gp.sampling.temperature = 0;
    auto st = eng.generate(std::vector<int32_t>{1, 3, 5}, gp, nullptr);
    EXPECT_EQ(st.stop, edgellm::engine::stop_reason::context);
    EXPECT_EQ(st.n_gen(), 8);  // positions 3..9 are decoded, plus the token sampled after the last
    int seen = 0;
    st = eng.generate(std::vector<int32_t>{1}, gp, [&](int32_t) { return ++seen < 4; });
    EXPECT_EQ(st.stop, edgellm::engine::stop_reason::cancelled);
    EXPECT_EQ(st.n_gen(), 4);
}

TEST(EngineErrors, GpuLayersAreRefusedNotIgnored) {
    // Without CUDA kernels in the build or a device, -ngl > 0 is an error naming why, never a CPU
    // run labelled as GPU. (With a device, tests/cuda covers the offloaded engine.)
    const std::string why = model::gpu_offload_unavailable_reason();
    if (why.empty()) GTEST_SKIP() << "a CUDA device is present: tests/cuda/cuda_engine_test covers -ngl";
    const auto path = tiny_model("ngl");
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.n_gpu_layers = 99;
    try {
        engine::engine e(ep);
        FAIL() << "-ngl 99 was accepted without a usable GPU";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("-ngl 99: " + why), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("use -ngl 0"), std::string::npos) << e.what();
    }
    ep.n_gpu_layers = 0;
    EXPECT_NO_THROW(engine::engine{ep});
}

TEST(EngineFallback, EachRungIsTakenWhenTheOneBeforeDoesNotFit) {
    // head_dim 32: Q8_0 / Q4_0 KV rungs are possible. Budgets are set from the exact sizes so
    // that each rung in turn is the first one that fits.
    tiny_model_spec s;
    s.n_embd = 128;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_ctx_train = 1024;
    const auto path = tiny_model("fallback", s);
    const uint64_t weights = std::filesystem::file_size(path);
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.n_ctx = 1024;
    ep.fallback = true;
    model::model_hparams hp;
    {
        engine::engine probe(ep);  // fits: nothing changes
        EXPECT_EQ(probe.params().fallback_note, "");
        EXPECT_EQ(probe.params().n_ctx, 1024);
        hp = probe.hparams();
    }
    auto kv = [&](ggml_type t, int64_t ctx) { return model::kv_cache::bytes_for(hp, ctx, t, 1, 0); };
    struct rung {
        uint64_t budget;
        ggml_type type;
        int64_t ctx;
    };
    for (const rung& r : {rung{weights + kv(ggml_type::f16, 512), ggml_type::f16, 512},
                          rung{weights + kv(ggml_type::f16, 256), ggml_type::f16, 256},
                          rung{weights + kv(ggml_type::q8_0, 256), ggml_type::q8_0, 256},
                          rung{weights + kv(ggml_type::q4_0, 256), ggml_type::q4_0, 256}}) {
        ep.memory_budget_bytes = r.budget;
        engine::engine e(ep);
        EXPECT_EQ(e.params().kv_type, r.type) << r.budget;
        EXPECT_EQ(e.params().n_ctx, r.ctx) << r.budget;
        EXPECT_EQ(e.kv().type(), r.type);
        EXPECT_NE(e.params().fallback_note.find("fallback:"), std::string::npos);
    }
    ep.memory_budget_bytes = weights;  // nothing fits
    try {
        engine::engine e(ep);
        FAIL() << "a load that fits no rung was accepted";
    } catch (const usage_error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("every rung too big"), std::string::npos) << m;
        EXPECT_NE(m.find("Q4_0 x 256"), std::string::npos) << m;
    }
    // A session on a model already loaded plans the same way (engine::plan_load): the same rung.
    {
        engine::engine_params lp = ep;
        lp.memory_budget_bytes = 0;
        auto lm = engine::load_model_for(lp);
        engine::engine_params sp = ep;
        sp.memory_budget_bytes = weights + kv(ggml_type::f16, 256);
        engine::engine e(lm, sp);
        EXPECT_EQ(e.params().n_ctx, 256);
        EXPECT_EQ(e.kv().type(), ggml_type::f16);
        EXPECT_EQ(e.params().fallback_note.rfind("fallback: F16 KV cache, context 256 (asked: F16, 1024;", 0), 0u)
            << e.params().fallback_note;
    }
    ep.fallback = false;  // without the chain: refused at once
    ep.memory_budget_bytes = weights + kv(ggml_type::f16, 512);
    EXPECT_THROW(engine::engine{ep}, usage_error);
}

TEST(EngineErrors, BadRequestsGiveClearMessages) {
    const auto path = tiny_model("errors");
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.n_ctx = 129;
    try {
        engine::engine e(ep);
        FAIL() << "context above the trained maximum was accepted";
    } catch (const usage_error& e) {
        EXPECT_STREQ(e.what(), "context size 129 exceeds the model's maximum of 128 tokens");
    }
    ep.n_ctx = 8;
    engine::engine eng(ep);
    engine::generation_params gp;
    EXPECT_THROW(eng.generate(std::vector<int32_t>(8, 1), gp, nullptr), usage_error);
    EXPECT_THROW(eng.generate(std::vector<int32_t>{}, gp, nullptr), usage_error);
    EXPECT_THROW(eng.generate(std::vector<int32_t>{1, 67}, gp, nullptr), usage_error);
    gp.n_predict = 0;
    EXPECT_THROW(eng.generate(std::vector<int32_t>{1}, gp, nullptr), usage_error);

    model::batch b;
    b.add(1, 3, 0, true);  // skips positions 0..2
    EXPECT_THROW(eng.forward().eval(eng.kv_mut(), b), error);
}

TEST(EngineErrors, WeightsPlusCacheAboveTheMemoryBudgetAreRefused) {
    const auto path = tiny_model("memory");
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.n_ctx = 64;
    ep.memory_budget_bytes = 4096;  // far below the file alone
    try {
        engine::engine e(ep);
        FAIL() << "a model larger than the memory budget was loaded";
    } catch (const usage_error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("not enough memory"), std::string::npos) << msg;
        EXPECT_NE(msg.find("KV cache of 64 tokens"), std::string::npos) << msg;
    }
    ep.memory_budget_bytes = 1ull << 30;
    EXPECT_NO_THROW(engine::engine e(ep));
}

// Repacked weights (the default) and the file's own layout give the same next-token choice at
// every position (up to near-ties) and logits within the activation-quantization noise, for every packed type,
// with row counts that leave tail rows (67-token vocabulary; 96-wide FFN where the block size
// allows). K-quants need 256-wide rows, so their model is 256 wide.
class EngineRepack : public ::testing::TestWithParam<ggml_type> {};

TEST_P(EngineRepack, RepackedWeightsMatchTheFileLayout) {
    tiny_model_spec s;
    s.weight_type = GetParam();
    // Tied embeddings (Gemma, SmolLM2: Q4_1) for some types: the output projection is packed while the
    // embedding lookup reads token_embd's file rows.
    s.tied = s.weight_type == ggml_type::q8_0 || s.weight_type == ggml_type::q4_1 || s.weight_type == ggml_type::q5_0 ||
             s.weight_type == ggml_type::q6_k;
    const bool k_quant = type_traits(s.weight_type).block_size == 256;
    s.n_embd = k_quant ? 256 : 128;
    s.n_ff = k_quant ? 256 : 96;
    const auto path = tiny_model("repack-" + std::string(type_name(s.weight_type)), s);
    engine::engine_params ep;
    ep.model_path = path.string();
    ep.n_threads = 2;
    engine::engine packed(ep);
    ep.repack = false;
    engine::engine plain(ep);
    EXPECT_EQ(plain.get_model().packed_bytes(), 0u);
    if (packed.get_model().packed_bytes() == 0) GTEST_SKIP() << "this CPU has no packed kernels";
    const auto& pw = packed.get_model().weights();
    EXPECT_TRUE(pw.output.packed) << "the output projection (tied: " << s.tied << ") is repacked";
    EXPECT_FALSE(pw.token_embd.packed);
    const auto a = packed.all_logits(k_prompt);
    const auto b = plain.all_logits(k_prompt);
    ASSERT_EQ(a.size(), b.size());
    const size_t n_vocab = size_t(packed.hparams().n_vocab);
    double err = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        err += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        norm += double(b[i]) * b[i];
    }
    // Each product gives the same integer sums, only summed in another float order; but a
    // last-bit difference can flip an activation's 8-bit rounding in the next layer, so the
    // logits differ by up to the activation-quantization noise (~3e-5 NMSE, see kernels tests).
    EXPECT_LE(err / norm, 2e-4);
    for (size_t t = 0; t < k_prompt.size(); ++t) {
        const auto* pa = &a[t * n_vocab];
        const auto* pb = &b[t * n_vocab];
        const auto ia = std::max_element(pa, pa + n_vocab) - pa, ib = std::max_element(pb, pb + n_vocab) - pb;
        // The choices may differ only at a near-tie: when every logit moved by at most delta,
        // the plain layout's top two were within 2 * delta (seen on Q4_K: 0.0033 apart).
        const float delta = max_abs_diff(pa, pb, n_vocab);
        if (ia != ib) {
            EXPECT_LE(pb[ib] - pb[ia], 2 * delta) << "position " << t << ": token " << ia << " vs " << ib;
        }
    }
}
INSTANTIATE_TEST_SUITE_P(PackedTypes, EngineRepack, ::testing::Values(ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0, ggml_type::q2_k, ggml_type::q3_k, ggml_type::q4_k, ggml_type::q5_k,
                                                                 ggml_type::q6_k, ggml_type::f16, ggml_type::bf16),
                         [](const auto& info) { return std::string(type_name(info.param)); });

}  // namespace
}  // namespace edgellm::test

namespace edgellm::test {
namespace {

// A chat turn re-sends its history: with keep_kv the shared prefix is not evaluated again, and
// the tokens are the same as a fresh run over the whole prompt.
// A chat turn resends the history: with keep_kv only what the cache lacks is evaluated, and the
// output equals a fresh run. With prefix caching (the default) the reuse is whole KV blocks; with
// it off, slot 0 keeps the previous turn's KV token for token.
TEST(EngineKvReuse, KeepKvReusesThePrefixAndMatchesAFreshRun) {
    for (const bool prefix_cache : {true, false}) {
        SCOPED_TRACE(prefix_cache ? "prefix cache" : "pinned slot");
        engine::engine_params ep;
        ep.model_path = tiny_model("kv_reuse").string();
        ep.n_threads = 2;
        ep.prefix_cache = prefix_cache;
        engine::engine eng(ep);
        EXPECT_EQ(eng.kv().prefix_caching(), prefix_cache);
        engine::generation_params gp;
        gp.n_predict = 6;
        gp.sampling.temperature = 0;
        gp.ignore_eos = true;
        std::vector<int32_t> turn1 = k_prompt, reply;
        turn1.insert(turn1.end(), k_prompt.begin(), k_prompt.begin() + 8);  // 25 tokens
        auto st1 = eng.generate(turn1, gp, [&](int32_t t) { reply.push_back(t); return true; }, /*keep_kv=*/true);
        EXPECT_EQ(st1.n_cached, 0);
        std::vector<int32_t> turn2 = turn1;
        turn2.insert(turn2.end(), reply.begin(), reply.end());
        turn2.insert(turn2.end(), {4, 8, 15});
        std::vector<int32_t> reused, fresh;
        auto st2 = eng.generate(turn2, gp, [&](int32_t t) { reused.push_back(t); return true; }, /*keep_kv=*/true);
        // Turn 1's prompt and all but its last reply token (30 positions) were decoded into the
        // cache: all of them stay in slot 0, or the one full block in the prefix cache.
        EXPECT_EQ(st2.n_cached, prefix_cache ? model::k_kv_block_size
                                             : static_cast<int64_t>(turn1.size() + reply.size() - 1));
        auto st3 = eng.generate(turn2, gp, [&](int32_t t) { fresh.push_back(t); return true; });
        EXPECT_EQ(st3.n_cached, 0) << "without keep_kv the whole prompt is evaluated";
        EXPECT_EQ(reused, fresh);
        EXPECT_EQ(eng.kv().n_used_blocks(), 0) << "a plain generate() gives its blocks back";
    }
}

// Sessions on one loaded model: the weights are shared, each session has its own KV cache.
TEST(EngineSharedModel, SessionsShareOneLoadAndAgree) {
    auto lm = engine::loaded_model::load(tiny_model("shared_model").string(), /*repack=*/true, 2);
    engine::engine_params ep;
    ep.n_threads = 2;
    engine::engine a(lm, ep), b(lm, ep);
    EXPECT_EQ(&a.get_model(), &b.get_model());
    EXPECT_NE(&a.kv(), &b.kv());
    EXPECT_EQ(a.all_logits(k_prompt), b.all_logits(k_prompt));
}

// A paged pool smaller than n_seq x n_ctx: batched generation still completes (a sequence
// waits for blocks), and each sequence equals its run alone.
TEST(EngineSharedModel, BatchOverASmallPagedPoolEqualsEachAlone) {
    engine::engine_params ep;
    ep.model_path = tiny_model("small_pool").string();
    ep.n_threads = 2;
    ep.n_seq = 3;
    ep.n_kv_cells = 64;  // 4 blocks for 3 sequences that each grow to 2 blocks
    engine::engine eng(ep);
    engine::generation_params gp;
    gp.n_predict = 12;
    gp.sampling.temperature = 0;
    gp.ignore_eos = true;
    std::vector<std::vector<int32_t>> prompts = {{1, 5, 17, 33, 2, 60, 9, 9, 41, 12, 3, 66, 0, 25, 7, 18, 50, 2, 3},
                                                 {2, 9, 4, 4, 61, 30, 7, 1, 1, 5, 8, 13, 21, 34, 55, 3, 6, 9, 12},
                                                 {7, 7, 7, 1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26}};
    auto st = engine::generate_batch(eng, prompts, gp);
    for (size_t s = 0; s < prompts.size(); ++s) {
        std::vector<int32_t> alone;
        eng.generate(prompts[s], gp, [&](int32_t t) { alone.push_back(t); return true; });
        EXPECT_EQ(st.sequences[s].tokens, alone) << "sequence " << s;
    }
}

}  // namespace
}  // namespace edgellm::test

namespace edgellm::test {
namespace {

// Decode splits one token's attention heads across threads and prefill may use its own thread
// count: the logits of every decode step are bit-identical whatever the counts (qwen3 too,
// whose Q/K are normalised per head before attention).
TEST(EngineThreads, DecodeLogitsBitIdenticalForAnyThreadAndBatchThreadCount) {
    for (const char* arch : {"llama", "qwen3"}) {
        tiny_model_spec spec;
        spec.arch = arch;
        spec.n_head = 8;
        spec.n_head_kv = 4;  // 4 KV heads: splits of 1, 2, 3 (uneven) and 4 groups
        const auto path = tiny_model(std::string("threads_split_") + arch, spec);
        std::vector<std::vector<float>> runs;
        for (auto [nt, ntb] : {std::pair{1, 1}, {2, 1}, {3, 2}, {4, 3}, {7, 4}}) {
            engine::engine_params ep;
            ep.model_path = path.string();
            ep.n_threads = nt;
            ep.n_threads_batch = ntb;
            engine::engine eng(ep);
            EXPECT_EQ(eng.forward().threads_for(1), nt);
            EXPECT_EQ(eng.forward().threads_for(5), ntb);
            model::batch b;
            for (size_t i = 0; i < k_prompt.size(); ++i) b.add(k_prompt[i], static_cast<int64_t>(i), 0, false);
            eng.forward().eval(eng.kv_mut(), b);
            std::vector<float> all;
            for (int step = 0; step < 6; ++step) {
                b.clear();
                b.add(k_prompt[static_cast<size_t>(step)], eng.kv().seq_len(0), 0, true);
                auto logits = eng.forward().eval(eng.kv_mut(), b);
                all.insert(all.end(), logits.begin(), logits.end());
            }
            runs.push_back(all);
        }
        for (size_t i = 1; i < runs.size(); ++i) EXPECT_EQ(runs[i], runs[0]) << arch << " run " << i;
    }
}

}  // namespace
}  // namespace edgellm::test

namespace edgellm::test {
namespace {

// Every way of loading checks memory before repacking: load_model_for (server, bench runners)
// refuses a budget below the file, with the context `adjust` chose; a session on an already
// loaded model is refused too when an explicit budget cannot hold weights + its KV cache.
TEST(EngineErrors, LoadForRefusesBeforeRepackingAndSessionsKeepAnExplicitBudget) {
    engine::engine_params ep;
    ep.model_path = tiny_model("load_for").string();
    ep.memory_budget_bytes = 4096;
    int adjusted = 0;
    try {
        engine::load_model_for(ep, [&](engine::engine_params& e, const model::model_hparams& hp) {
            ++adjusted;
            e.n_ctx = hp.n_ctx_train / 2;
        });
        FAIL() << "loaded a model larger than the budget";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("KV cache of 64 tokens"), std::string::npos) << e.what();
    }
    EXPECT_EQ(adjusted, 1);
    ep.memory_budget_bytes = 0;
    ep.n_ctx = 0;  // the refused call had completed ep in place
    auto lm = engine::load_model_for(ep);
    EXPECT_EQ(ep.n_ctx, 128) << "n_ctx 0 became the model's context";
    engine::engine_params sp;
    sp.memory_budget_bytes = 4096;
    EXPECT_THROW(engine::engine(lm, sp), usage_error);
    sp.memory_budget_bytes = 1ull << 30;
    EXPECT_NO_THROW(engine::engine(lm, sp));
}

}  // namespace
}  // namespace edgellm::test

namespace edgellm::test {
namespace {

// --deterministic: a sequence's logits are bit-identical whether its prompt is evaluated alone in
// one pass or in chunks beside another sequence's prefill and decode tokens, and its decode step
// alone or in a batch (quantized weights, so the packed and tiled products are in play).
TEST(EngineDeterministic, LogitsOfASequenceDoNotDependOnItsBatch) {
    for (const ggml_type wt : {ggml_type::q4_0, ggml_type::q8_0}) {
        SCOPED_TRACE(type_name(wt));
        tiny_model_spec spec;
        spec.weight_type = wt;
        engine::engine_params ep;
        ep.model_path = tiny_model("deterministic_" + std::string(type_name(wt)), spec).string();
        ep.n_threads = 2;
        ep.n_seq = 2;
        ep.deterministic = true;
        engine::engine eng(ep);
        model::forward_pass& f = eng.forward();
        model::kv_cache& kv = eng.kv_mut();
        const size_t n_vocab = static_cast<size_t>(eng.hparams().n_vocab);
        const std::vector<int32_t> a = {1, 5, 17, 33, 2, 60, 9, 9, 41, 12, 3, 66, 0};
        const std::vector<int32_t> b = {2, 9, 4, 4, 61, 30, 7, 1, 1, 5, 8};
        const int32_t next = 14;  // a token decoded after a's prompt
        auto copy = [](std::span<const float> s) { return std::vector<float>(s.begin(), s.end()); };

        // Alone: a's prompt in one pass, then one decode step.
        kv.clear_all();
        model::batch bt;
        for (size_t i = 0; i < a.size(); ++i) bt.add(a[i], int64_t(i), 0, i + 1 == a.size());
        const auto prefill_alone = copy(f.eval(kv, bt));
        bt.clear();
        bt.add(next, int64_t(a.size()), 0, true);
        const auto decode_alone = copy(f.eval(kv, bt));

        // Batched: b's prompt first, then a's prompt in chunks of 5 beside b's decode tokens, then
        // a's decode step beside b's.
        kv.clear_all();
        bt.clear();
        for (size_t i = 0; i < b.size(); ++i) bt.add(b[i], int64_t(i), 1, false);
        f.eval(kv, bt);
        int64_t b_pos = int64_t(b.size());
        std::vector<float> prefill_batched;
        for (size_t i0 = 0; i0 < a.size(); i0 += 5) {
            bt.clear();
            bt.add(int32_t(3 + i0), b_pos++, 1, true);
            const size_t i1 = std::min(a.size(), i0 + 5);
            for (size_t i = i0; i < i1; ++i) bt.add(a[i], int64_t(i), 0, i + 1 == a.size());
            const auto out = copy(f.eval(kv, bt));
            if (i1 == a.size()) prefill_batched.assign(out.begin() + n_vocab, out.end());  // after b's row
        }
        bt.clear();
        bt.add(7, b_pos, 1, true);
        bt.add(next, int64_t(a.size()), 0, true);
        const auto decode_batched = copy(f.eval(kv, bt));

        ASSERT_EQ(prefill_batched.size(), n_vocab);
        EXPECT_EQ(0, std::memcmp(prefill_alone.data(), prefill_batched.data(), n_vocab * sizeof(float)))
            << "prompt logits differ by up to " << max_abs_diff(prefill_alone.data(), prefill_batched.data(), n_vocab);
        EXPECT_EQ(0, std::memcmp(decode_alone.data(), decode_batched.data() + n_vocab, n_vocab * sizeof(float)))
            << "decode logits differ by up to " << max_abs_diff(decode_alone.data(), decode_batched.data() + n_vocab, n_vocab);
    }
}

TEST(EngineDeterministic, RefusedWithGpuLayers) {
    engine::engine_params ep;
    ep.model_path = tiny_model("deterministic_gpu").string();
    ep.deterministic = true;
    ep.n_gpu_layers = 1;
    try {
        engine::engine e(ep);
        FAIL() << "--deterministic with GPU layers was accepted";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("--deterministic runs on the CPU kernels only"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace edgellm::test
