// Memory planner: model facts from a real GGUF, planner numbers against hand-computed cases
// (discrete GPU, partial offload, CPU only, smaller context, Jetson unified memory). The loader's
// fallback chain is engine::plan_load (tests/unit/load_plan_test.cpp).
#include "device/memory_plan.h"

#include <gtest/gtest.h>

#include <fstream>
#include <tuple>

#include "core/error.h"
#include "device/device.h"
#include "model/kv_cache.h"
#include "test_util.h"

using namespace edgellm;
using namespace edgellm::device;

namespace {

constexpr uint64_t k_mib = 1024ull * 1024;
constexpr uint64_t k_gib = 1024 * k_mib;

// A TinyLlama-1.1B-shaped model with round sizes: 22 layers of 100 MiB, 4 KV heads of 64.
model_memory_facts tiny_llama() {
    model_memory_facts m;
    m.name = "tiny";
    m.architecture = "llama";
    m.n_layer = 22;
    m.n_embd = 2048;
    m.n_ff = 5632;
    m.n_head = 32;
    m.n_head_kv = 4;
    m.head_dim_k = m.head_dim_v = 64;
    m.n_vocab = 32000;
    m.n_ctx_train = 2048;
    m.layer_weight_bytes.assign(22, 100 * k_mib);
    m.embedding_bytes = 50 * k_mib;
    m.output_bytes = 50 * k_mib;
    return m;
}

// Hand arithmetic for tiny_llama with n_batch 512 (see scratch_bytes):
// 4 * (512 * (4*2048 + 2*5632) + 32 * 512 * ctx + 32000)
constexpr uint64_t k_scratch_4096 =
    4ull * (512 * 19456 + 32ull * 512 * 4096 + 32000);  // 308,409,344
constexpr uint64_t k_scratch_2048 =
    4ull * (512 * 19456 + 32ull * 512 * 2048 + 32000);        // 174,191,616
constexpr uint64_t k_kv_per_token_layer = 4 * (64 + 64) * 2;  // 1024 B at F16

}  // namespace

TEST(ModelFacts, Stories260KFromGgufMatchesItsTensorTable) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    model_memory_facts m = model_facts_from_gguf(path.string());
    EXPECT_EQ(m.architecture, "llama");
    EXPECT_EQ(m.n_layer, 5);
    EXPECT_EQ(m.n_embd, 64);
    EXPECT_EQ(m.n_ff, 172);
    EXPECT_EQ(m.n_head, 8);
    EXPECT_EQ(m.n_head_kv, 4);
    EXPECT_EQ(m.head_dim_k, 8);
    EXPECT_EQ(m.n_vocab, 512);
    EXPECT_EQ(m.n_ctx_train, 2048);
    // Per layer, F32: q 64x64, k and v 64x32, o 64x64, gate/up/down 64x172, two norms of 64.
    const uint64_t layer = 4 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 172 + 2 * 64);
    ASSERT_EQ(m.layer_weight_bytes.size(), 5u);
    for (uint64_t b : m.layer_weight_bytes) EXPECT_EQ(b, layer);
    EXPECT_EQ(m.embedding_bytes, 4u * 64 * 512);
    EXPECT_EQ(m.output_bytes, 4u * 64 * 512 + 4 * 64);
    EXPECT_EQ(m.total_weight_bytes(), 5 * layer + 4 * 64 * 512 * 2 + 4 * 64);
    // K and V: 4 KV heads x 8 dims x 2 bytes each.
    EXPECT_EQ(m.kv_bytes_per_token_per_layer(), 2u * 4 * 8 * 2);
    EXPECT_EQ(m.kv_bytes(5, 2048), 5u * 2048 * 128);
}

TEST(ModelFacts, NonGgufFileIsAClearError) {
    auto dir = test::temp_dir("facts");
    { std::ofstream(dir / "x.gguf") << "not a gguf file at all"; }
    EXPECT_THROW(model_facts_from_gguf((dir / "x.gguf").string()), edgellm::error);
    EXPECT_THROW(model_facts_from_gguf((dir / "missing.gguf").string()), edgellm::error);
    std::filesystem::remove_all(dir);
}

TEST(MemoryPlan, ScratchAndUsageMatchHandArithmetic) {
    auto m = tiny_llama();
    EXPECT_EQ(scratch_bytes(m, 4096, 512), k_scratch_4096);
    EXPECT_EQ(scratch_bytes(m, 2048, 512), k_scratch_2048);
    memory_usage u = estimate_usage(m, 22, 4096, 512);
    EXPECT_EQ(u.gpu_weight_bytes, 22 * 100 * k_mib + 50 * k_mib);  // layers + output head
    EXPECT_EQ(u.host_weight_bytes, 50 * k_mib);                    // token embeddings
    EXPECT_EQ(u.gpu_kv_bytes, 22 * 4096 * k_kv_per_token_layer);   // 88 MiB
    EXPECT_EQ(u.host_kv_bytes, 0u);
    EXPECT_EQ(u.gpu_scratch_bytes, k_scratch_4096);
    memory_usage half = estimate_usage(m, 11, 4096, 512);
    EXPECT_EQ(half.gpu_weight_bytes, 11 * 100 * k_mib);  // output head stays on the host
    EXPECT_EQ(half.host_weight_bytes, 11 * 100 * k_mib + 100 * k_mib);
    EXPECT_EQ(half.host_kv_bytes, 11 * 4096 * k_kv_per_token_layer);
}

TEST(MemoryPlan, EverythingOnALargeDiscreteGpu) {
    auto m = tiny_llama();
    plan_budget b;
    b.has_gpu = true;
    b.gpu_free_bytes = 8 * k_gib;
    b.host_free_bytes = 16 * k_gib;
    b.margin_bytes = 256 * k_mib;
    plan_request r;
    r.n_ctx = 4096;
    memory_plan p = plan_memory(m, b, r);
    EXPECT_EQ(p.usage.n_gpu_layers, 22);
    EXPECT_EQ(p.usage.n_ctx, 4096);
    EXPECT_FALSE(p.ctx_reduced);
    const uint64_t gpu = 2250 * k_mib + 88 * k_mib + k_scratch_4096;
    EXPECT_EQ(p.usage.gpu_total(), gpu);
    EXPECT_EQ(p.gpu_left_bytes, 8 * k_gib - gpu - 256 * k_mib);
    EXPECT_EQ(p.explanation.rfind("22/22 layers on GPU, 2.20 GiB weights + 88.00 MiB KV", 0), 0u)
        << p.explanation;
    EXPECT_NE(p.explanation.find("at ctx 4096"), std::string::npos);
}

TEST(MemoryPlan, SmallGpuTakesTheLayersThatFit) {
    auto m = tiny_llama();
    plan_budget b;
    b.has_gpu = true;
    b.gpu_free_bytes = 1 * k_gib;
    b.host_free_bytes = 16 * k_gib;
    b.margin_bytes = 256 * k_mib;
    plan_request r;
    r.n_ctx = 4096;
    memory_plan p = plan_memory(m, b, r);
    // 768 MiB of room less 294.1 MiB scratch leaves 473.9 MiB; a layer and its KV take
    // 100 + 4 MiB, so 4 layers fit and 5 do not.
    EXPECT_EQ(p.usage.n_gpu_layers, 4);
    EXPECT_EQ(p.usage.n_ctx, 4096);
    EXPECT_EQ(p.explanation.rfind("4/22 layers on GPU", 0), 0u) << p.explanation;
    r.n_gpu_layers_max = 2;
    EXPECT_EQ(plan_memory(m, b, r).usage.n_gpu_layers, 2);
}

TEST(MemoryPlan, CpuOnlyShrinksTheContextWhenNeeded) {
    auto m = tiny_llama();
    plan_budget b;
    b.host_free_bytes = 2600 * k_mib;
    b.margin_bytes = 0;
    plan_request r;
    r.n_ctx = 4096;
    // ctx 4096: 2300 MiB weights + 88 MiB KV + 294.1 MiB scratch > 2600 MiB;
    // ctx 2048: 2300 + 44 + 166.1 MiB fits.
    memory_plan p = plan_memory(m, b, r);
    EXPECT_EQ(p.usage.n_gpu_layers, 0);
    EXPECT_EQ(p.usage.n_ctx, 2048);
    EXPECT_TRUE(p.ctx_reduced);
    EXPECT_EQ(p.host_left_bytes, 2600 * k_mib - (2300 * k_mib + 44 * k_mib + k_scratch_2048));
    EXPECT_EQ(p.explanation.rfind("CPU only", 0), 0u) << p.explanation;
    EXPECT_NE(p.explanation.find("context reduced from 4096"), std::string::npos);
}

TEST(MemoryPlan, ModelThatCannotFitIsAClearErrorWithNumbers) {
    auto m = tiny_llama();
    plan_budget b;
    b.host_free_bytes = 1 * k_gib;
    b.margin_bytes = 64 * k_mib;
    try {
        plan_memory(m, b, {});
        FAIL() << "expected usage_error";
    } catch (const usage_error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("does not fit"), std::string::npos) << msg;
        EXPECT_NE(msg.find("at ctx 256"), std::string::npos) << msg;
        EXPECT_NE(msg.find("2.25 GiB weights"), std::string::npos) << msg;  // 2300 MiB
        EXPECT_NE(msg.find("1.00 GiB of RAM"), std::string::npos) << msg;
    }
}

TEST(MemoryPlan, OrinNanoFixtureKeepsTheSystemReserveInOnePool) {
    detect_options o;
    o.root = std::filesystem::path(EDGELLM_SOURCE_DIR) / "tests/fixtures/devices/orin-nano-8gb";
    device_info d = detect_device(o);
    plan_budget b = budget_from_device(d);
    EXPECT_TRUE(b.unified_memory);
    EXPECT_TRUE(b.has_gpu);
    EXPECT_EQ(b.system_reserve_bytes, 2 * k_gib);
    // MemAvailable is 6 GiB, but total less the reserve is lower: 7620244 KiB - 2 GiB.
    EXPECT_EQ(b.host_free_bytes, 7620244ull * 1024 - 2 * k_gib);
    auto m = tiny_llama();
    memory_plan p = plan_memory(m, b, {4096, 512, 256, -1});
    EXPECT_EQ(p.usage.n_gpu_layers, 22);
    EXPECT_TRUE(p.unified_memory);
    EXPECT_EQ(p.host_left_bytes,
              b.host_free_bytes - b.margin_bytes - p.usage.gpu_total() - p.usage.host_total());
    EXPECT_NE(p.explanation.find("unified memory"), std::string::npos) << p.explanation;
    EXPECT_NE(p.explanation.find("2.00 GiB system reserve"), std::string::npos) << p.explanation;
    // A cap lowers the pool below the model: the planner refuses with the reserve named.
    plan_budget capped = budget_from_device(d, 1 * k_gib);
    EXPECT_THROW(plan_memory(m, capped, {}), usage_error);
}

TEST(MemoryPlan, SlidingWindowLayersCountTheEnginesWindowPool) {
    const model::model_hparams hp = test::gemma3_270m_kv_hparams();
    model_memory_facts m;
    m.n_layer = 18;
    m.n_head_kv = 1;
    m.head_dim_k = m.head_dim_v = 256;
    for (int il = 0; il < 18; ++il) m.layer_window.push_back(hp.window(il));
    // The planner's host KV is what the engine's cache allocates.
    EXPECT_EQ(m.host_kv_bytes(18, 32768), model::kv_cache::bytes_for(hp, 32768, ggml_type::f16, 1, 0));
    EXPECT_LT(m.host_kv_bytes(18, 32768), m.kv_bytes(18, 32768) / 5);
    // GPU layers (the last ones) keep the whole context; the host keeps the first 12.
    const memory_usage u = estimate_usage(m, 6, 32768, 512);
    EXPECT_EQ(u.gpu_kv_bytes, m.kv_bytes(6, 32768));
    EXPECT_EQ(u.host_kv_bytes, m.host_kv_bytes(12, 32768));
    EXPECT_EQ(u.host_kv_bytes, (2 * 32768 + 10 * 1104) * 1024u);
}
