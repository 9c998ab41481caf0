// engine::plan_load, the loader's plan (context, KV type, GPU layers, fallback rung), on plain
// numbers: no model file. Budgets are derived from model::kv_cache::bytes_for (the one KV formula)
// and model::gpu_layers_device_bytes so that each rung in turn is the first that fits.
#include "engine/load_plan.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "core/units.h"
#include "model/kv_cache.h"

using namespace edgellm;
using engine::engine_params;
using engine::load_plan;
using engine::load_plan_memory;
using engine::load_plan_model;
using engine::plan_load;

namespace {

// 4 layers, 2 KV heads of 32 (whole Q8_0 / Q4_0 blocks), trained context 1024, 1 MiB of weights.
load_plan_model small_model(int64_t head_dim = 32) {
    load_plan_model m;
    auto& hp = m.hp;
    hp.arch = "llama";
    hp.n_layer = 4;
    hp.n_head = 4;
    hp.n_head_kv = 2;
    hp.head_dim = hp.head_dim_v = head_dim;
    hp.n_embd = hp.n_head * head_dim;
    hp.n_ff = 256;
    hp.n_vocab = 100;
    hp.n_ctx_train = 1024;
    m.weights_bytes = 1ull << 20;
    m.gpu.layers.assign(4, 100'000);
    m.gpu.output = 50'000;
    return m;
}

uint64_t kv(const load_plan_model& m, ggml_type t, int64_t ctx, int n_seq = 1, int64_t n_cells = 0) {
    return model::kv_cache::bytes_for(m.hp, ctx, t, n_seq, n_cells);
}

engine_params params(int64_t n_ctx, uint64_t budget, bool fallback = true) {
    engine_params p;
    p.n_ctx = n_ctx;
    p.memory_budget_bytes = budget;
    p.fallback = fallback;
    return p;
}

TEST(LoadPlan, FitsAsAskedAndTheDefaultContextIsTheTrainedOneCapped) {
    const auto m = small_model();
    const uint64_t room = m.weights_bytes + kv(m, ggml_type::f16, 1024);
    load_plan p = plan_load(params(0, room), m, {});
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.n_ctx, 1024);  // min(n_ctx_train 1024, k_default_max_ctx 4096)
    EXPECT_EQ(p.kv_type, ggml_type::f16);
    EXPECT_EQ(p.rung, "as asked");
    EXPECT_EQ(p.note, "");
    EXPECT_TRUE(p.tried.empty());
    EXPECT_EQ(p.kv_bytes, kv(m, ggml_type::f16, 1024));
    EXPECT_EQ(p.n_batch, 512);

    auto big = small_model();
    big.hp.n_ctx_train = 32768;
    p = plan_load(params(0, 0), big, {});  // nothing known about memory: nothing checked
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.n_ctx, engine::k_default_max_ctx);
    EXPECT_EQ(p.budget_bytes, 0u);

    p = plan_load(params(2048, 0), m, {});
    EXPECT_EQ(p.error, "context size 2048 exceeds the model's maximum of 1024 tokens");
}

TEST(LoadPlan, ContextIsHalvedWhenItDoesNotFit) {
    const auto m = small_model();
    const load_plan p = plan_load(params(1024, m.weights_bytes + kv(m, ggml_type::f16, 512)), m, {});
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.n_ctx, 512);
    EXPECT_EQ(p.kv_type, ggml_type::f16);
    EXPECT_EQ(p.rung, "smaller context");
    EXPECT_EQ(p.note, "fallback: F16 KV cache, context 512 (asked: F16, 1024; F16 x 1024 did not fit)");
    EXPECT_EQ(p.n_batch, 512);
}

TEST(LoadPlan, KvTypeRungThenContext) {
    const auto m = small_model();
    // F16 does not fit even at the smallest context (256); Q8_0 fits at 256 after 1024 and 512 missed.
    const uint64_t budget = m.weights_bytes + kv(m, ggml_type::q8_0, 256);
    ASSERT_LT(budget, m.weights_bytes + kv(m, ggml_type::f16, 256));
    load_plan p = plan_load(params(1024, budget), m, {});
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.kv_type, ggml_type::q8_0);
    EXPECT_EQ(p.n_ctx, 256);
    EXPECT_EQ(p.rung, "smaller KV type and context");
    EXPECT_EQ(p.note,
              "fallback: Q8_0 KV cache, context 256 (asked: F16, 1024; F16 x 1024, F16 x 512, F16 x 256, "
              "Q8_0 x 1024, Q8_0 x 512 did not fit)");
    EXPECT_EQ(p.kv_bytes, kv(m, ggml_type::q8_0, 256));

    // The KV type alone: Q4_0 at the asked context.
    p = plan_load(params(256, m.weights_bytes + kv(m, ggml_type::q4_0, 256)), m, {});
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.kv_type, ggml_type::q4_0);
    EXPECT_EQ(p.n_ctx, 256);
    EXPECT_EQ(p.rung, "smaller KV type");

    // Heads that are not whole 32-blocks have no quantized KV rung: refused after the contexts.
    const auto odd = small_model(/*head_dim=*/24);
    p = plan_load(params(1024, odd.weights_bytes + kv(odd, ggml_type::f16, 256) - 1), odd, {});
    EXPECT_FALSE(p.ok());
    EXPECT_NE(p.error.find("every rung too big: F16 x 1024, F16 x 512, F16 x 256)"), std::string::npos) << p.error;
}

TEST(LoadPlan, EverythingTooBigIsRefusedNamingTheSizes) {
    const auto m = small_model();
    const load_plan p = plan_load(params(1024, m.weights_bytes), m, {});
    ASSERT_FALSE(p.ok());
    // The first rung's numbers, then every rung tried.
    EXPECT_NE(p.error.find(fmt::format("the model needs {} for its weights plus {} for a KV cache of 1024 tokens, but "
                                       "only {} is available",
                                       format_bytes(m.weights_bytes), format_bytes(kv(m, ggml_type::f16, 1024)),
                                       format_bytes(m.weights_bytes))),
              std::string::npos)
        << p.error;
    EXPECT_NE(p.error.find("every rung too big: F16 x 1024, F16 x 512, F16 x 256, Q8_0 x 1024, Q8_0 x 512, Q8_0 x 256, "
                           "Q4_0 x 1024, Q4_0 x 512, Q4_0 x 256)"),
              std::string::npos)
        << p.error;
    EXPECT_THROW(engine::apply_load_plan(p, *std::make_unique<engine_params>()), usage_error);

    // Without the fallback chain: the plain refusal, at the asked rung.
    const load_plan strict = plan_load(params(1024, m.weights_bytes + kv(m, ggml_type::f16, 512), false), m, {});
    ASSERT_FALSE(strict.ok());
    EXPECT_EQ(strict.error.find("not enough memory: the model needs"), 0u) << strict.error;
    EXPECT_EQ(strict.error.find("fallback"), std::string::npos) << strict.error;
}

TEST(LoadPlan, ExplicitBudgetCountsTheWeightsEvenWhenResident) {
    const auto m = small_model();
    load_plan_memory resident;
    resident.weights_resident = true;
    resident.ram_available_bytes = kv(m, ggml_type::f16, 1024);  // what is left besides the loaded model
    // Available memory: a resident model's weights are not counted again.
    load_plan p = plan_load(params(1024, 0, false), m, resident);
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.weights_bytes, 0u);
    EXPECT_FALSE(p.explicit_budget);
    resident.ram_available_bytes -= 1;
    p = plan_load(params(1024, 0, false), m, resident);
    EXPECT_EQ(p.error.find("not enough memory: a KV cache of 1024 tokens needs"), 0u) << p.error;
    // --memory-limit always counts them, and the RAM reading is not used.
    resident.ram_available_bytes = 1ull << 40;
    p = plan_load(params(1024, kv(m, ggml_type::f16, 1024), false), m, resident);
    ASSERT_FALSE(p.ok());
    EXPECT_TRUE(p.explicit_budget);
    EXPECT_EQ(p.weights_bytes, m.weights_bytes);
    p = plan_load(params(1024, m.weights_bytes + kv(m, ggml_type::f16, 1024), false), m, resident);
    EXPECT_TRUE(p.ok()) << p.error;
}

TEST(LoadPlan, SequencesAndKvPoolAreSizedByKvCacheBytesFor) {
    const auto m = small_model();
    engine_params e = params(512, m.weights_bytes + kv(m, ggml_type::f16, 512, 4, 1024), false);
    e.n_seq = 4;
    e.n_kv_cells = 1024;
    load_plan p = plan_load(e, m, {});
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.kv_bytes, kv(m, ggml_type::f16, 512, 4, 1024));
    e.memory_budget_bytes -= 1;
    EXPECT_FALSE(plan_load(e, m, {}).ok());
}

TEST(LoadPlan, FewerGpuLayersWhenGpuMemoryIsSmall) {
    const auto m = small_model();
    engine_params e = params(256, 0);
    e.n_gpu_layers = 5;  // every layer and the output layer
    e.n_batch = 64;
    auto need = [&](int n) { return model::gpu_layers_device_bytes(m.hp, m.gpu, n, 256, ggml_type::f16, 64); };
    load_plan_memory mem;
    mem.gpu_free_bytes = need(5);
    load_plan p = plan_load(e, m, mem);
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.n_gpu_layers, 5);
    EXPECT_EQ(p.rung, "as asked");
    EXPECT_EQ(p.gpu_bytes, need(5));

    mem.gpu_free_bytes = need(2);  // room for half of the 4 layers
    p = plan_load(e, m, mem);
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.n_gpu_layers, 2);
    EXPECT_EQ(p.rung, "fewer GPU layers");
    EXPECT_EQ(p.gpu_tried.size(), 2u);  // 5, then 3 (3/4 of 4)
    EXPECT_NE(p.note.find("fallback: 2 of 4 layers on the GPU (asked -ngl 5;"), std::string::npos) << p.note;

    mem.gpu_free_bytes = 0;  // none fits: every layer on the CPU
    EXPECT_EQ(plan_load(e, m, mem).n_gpu_layers, 0);

    // Host and GPU rungs together: both notes, the GPU bytes at the reduced context.
    e.n_ctx = 1024;
    e.memory_budget_bytes = m.weights_bytes + kv(m, ggml_type::f16, 512);
    mem.gpu_free_bytes = model::gpu_layers_device_bytes(m.hp, m.gpu, 1, 512, ggml_type::f16, 64);
    p = plan_load(e, m, mem);
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.n_ctx, 512);
    EXPECT_EQ(p.n_gpu_layers, 1);
    EXPECT_EQ(p.rung, "smaller context; fewer GPU layers");
    EXPECT_NE(p.note.find("fallback: F16 KV cache, context 512"), std::string::npos) << p.note;
    EXPECT_NE(p.note.find("; fallback: 1 of 4 layers on the GPU"), std::string::npos) << p.note;

    // Without the fallback chain the layers stay as asked (the GPU refuses them when created).
    e.fallback = false;
    e.memory_budget_bytes = 0;
    EXPECT_EQ(plan_load(e, m, mem).n_gpu_layers, 5);

    // No GPU here: -ngl is refused with the reason.
    mem.gpu_unavailable_reason = "no CUDA device found";
    p = plan_load(e, m, mem);
    EXPECT_EQ(p.error, "-ngl 5: no CUDA device found");
}

TEST(LoadPlan, ApplySetsTheChoiceAndAppendsTheNote) {
    const auto m = small_model();
    engine_params e = params(1024, m.weights_bytes + kv(m, ggml_type::f16, 512));
    e.fallback_note = "earlier";
    engine::apply_load_plan(plan_load(e, m, {}), e);
    EXPECT_EQ(e.n_ctx, 512);
    EXPECT_EQ(e.kv_type, ggml_type::f16);
    EXPECT_EQ(e.fallback_note.find("earlier; fallback: F16 KV cache, context 512"), 0u) << e.fallback_note;
    // Planning the applied parameters again changes nothing (a session on the loaded model).
    engine_params again = e;
    engine::apply_load_plan(plan_load(again, m, {}), again);
    EXPECT_EQ(again.n_ctx, 512);
    EXPECT_EQ(again.fallback_note, e.fallback_note);
}

}  // namespace
