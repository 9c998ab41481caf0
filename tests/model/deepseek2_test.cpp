// deepseek2 (Multi-head Latent Attention + Mixture of Experts) in the engine: hyperparameters of
// the synth deepseek2-tiny model come from its metadata, the KV cache stores one latent row per
// token, -ngl refuses the model with the reason, and two sequences routed through the experts in
// one batch get the logits each gets alone. Logits against llama.cpp: test_engine_deepseek2_llamacpp.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "device/memory_plan.h"
#include "engine/engine.h"
#include "model/forward.h"
#include "model/gpu_layers.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/synth.h"
#include "model_fixture.h"
#include "quant/quant.h"
#include "test_util.h"

namespace edgellm::test {
namespace {

float max_abs_diff(const float* a, const float* b, size_t n) {
    float d = 0.0f;
    for (size_t i = 0; i < n; ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

std::filesystem::path deepseek2_tiny(const std::string& tag) {
    const auto path = temp_dir(tag) / "ds2.gguf";
    synth::options o;
    o.shape = "deepseek2-tiny";
    o.type = "f32";
    synth::write_model(path.string(), o);
    return path;
}

TEST(DeepSeek2, HparamsAndLayersComeFromMetadata) {
    const auto m = model::model::load(deepseek2_tiny("ds2-hp").string());
    const synth::deepseek2_shape& want = synth::find_shape("deepseek2-tiny").ds;
    const model::model_hparams& hp = m->hparams();
    EXPECT_EQ(hp.arch, "deepseek2");
    EXPECT_EQ(hp.mla.q_lora_rank, want.q_lora_rank);
    EXPECT_EQ(hp.mla.kv_lora_rank, want.kv_lora_rank);
    EXPECT_EQ(hp.mla.qk_nope, want.qk_nope);
    EXPECT_EQ(hp.mla.qk_rope, want.qk_rope);
    EXPECT_EQ(hp.mla.v_head, want.v_head);
    // The MQA view of MLA: one cached row of latent + rope key per token, shared by every head.
    EXPECT_EQ(hp.n_head_kv, 1);
    EXPECT_EQ(hp.head_dim, want.kv_lora_rank + want.qk_rope);
    EXPECT_EQ(hp.moe.n_expert, want.n_expert);
    EXPECT_EQ(hp.moe.n_expert_used, want.n_expert_used);
    EXPECT_EQ(hp.moe.n_expert_shared, want.n_expert_shared);
    EXPECT_EQ(hp.moe.n_ff_exp, want.n_ff_exp);
    EXPECT_EQ(hp.moe.n_dense_lead, want.n_dense_lead);
    EXPECT_TRUE(hp.rope_yarn);
    EXPECT_EQ(hp.n_ctx_orig_yarn, want.yarn_orig_ctx);
    EXPECT_FLOAT_EQ(hp.rope_freq_scale, 1.0f / want.yarn_factor);
    ASSERT_EQ(m->weights().layers.size(), 3u);
    const auto& dense = m->weights().layers[0];
    EXPECT_TRUE(dense.ffn_gate && !dense.moe.gate_inp);
    const auto& moe = m->weights().layers[1];
    EXPECT_TRUE(moe.moe.gate_inp && !moe.ffn_gate);
    ASSERT_EQ(moe.moe.gate.size(), static_cast<size_t>(want.n_expert));
    // Experts are consecutive slices of the 3-D tensor, in place in the mapping.
    const auto* t = m->file().find_tensor("blk.1.ffn_gate_exps.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(moe.moe.gate[0].data, t->data);
    EXPECT_EQ(static_cast<const uint8_t*>(moe.moe.gate[1].data) - static_cast<const uint8_t*>(t->data),
              static_cast<ptrdiff_t>(row_size(t->type, t->ne[0]) * static_cast<size_t>(want.n_ff_exp)));
    ASSERT_EQ(moe.mla.wk_b.size(), static_cast<size_t>(hp.n_head));
}

TEST(DeepSeek2, KvCacheHoldsOneLatentRowPerToken) {
    const auto m = model::model::load(deepseek2_tiny("ds2-kv").string());
    const model::model_hparams& hp = m->hparams();
    model::kv_cache kv(hp, 32, ggml_type::f16);
    EXPECT_TRUE(kv.values_in_keys());
    EXPECT_EQ(kv.row_elems(), hp.mla.kv_lora_rank + hp.mla.qk_rope);
    // K rows only: half of what a cache with separate V rows of the same width would take.
    const uint64_t rows = static_cast<uint64_t>(kv.n_blocks() * model::k_kv_block_size * hp.n_layer);
    EXPECT_EQ(kv.size_bytes(), rows * row_size(ggml_type::f16, kv.row_elems()));
    EXPECT_EQ(model::kv_cache::bytes_for(hp, 32, ggml_type::f16, 1, 0), kv.size_bytes());
    const kernels::kv_view v = kv.view(0, 0);
    EXPECT_EQ(v.v, v.k);
    // A llama model keeps separate K and V rows.
    tiny_model_spec s;
    const auto llama_path = temp_dir("ds2-kv-llama") / "m.gguf";
    write_tiny_model(s, llama_path);
    const auto llama = model::model::load(llama_path.string());
    model::kv_cache kv2(llama->hparams(), 32, ggml_type::f16);
    EXPECT_FALSE(kv2.values_in_keys());
    EXPECT_NE(kv2.view(0, 0).v, kv2.view(0, 0).k);
}

// The memory planner (edgellm device) counts the KV cache the engine allocates: for MLA one row of
// kv_lora_rank + rope dims per token and layer, not the key_length + value_length the metadata
// declares per KV head; and as before for a llama model with separate K and V rows.
TEST(DeepSeek2, MemoryPlannerKvBytesMatchTheEnginesKvCache) {
    tiny_model_spec s;
    s.n_embd = 128;  // heads of 32: whole Q8_0 blocks
    const auto llama_path = temp_dir("ds2-plan-llama") / "m.gguf";
    write_tiny_model(s, llama_path);
    for (const auto& path : {deepseek2_tiny("ds2-plan"), llama_path}) {
        device::model_memory_facts facts = device::model_facts_from_gguf(path.string());
        const gguf::file f = gguf::file::open(path.string());
        const std::string a = facts.architecture + ".";
        for (const auto& [type, bytes_per_element] : {std::pair{ggml_type::f16, 2.0}, std::pair{ggml_type::q8_0, 34.0 / 32}}) {
            engine::engine_params ep;
            ep.model_path = path.string();
            ep.n_ctx = 64;
            ep.n_threads = 1;
            ep.kv_type = type;
            engine::engine eng(ep);
            facts.kv_bytes_per_element = bytes_per_element;
            EXPECT_EQ(facts.kv_bytes(facts.n_layer, ep.n_ctx), eng.kv().size_bytes()) << path << " " << type_name(type);
            if (facts.architecture == "deepseek2") {
                // The metadata's MQA view (key_length = kv_lora_rank + rope dims, value_length =
                // kv_lora_rank) would count the latent twice.
                const model::mla_hparams& mla = eng.hparams().mla;
                EXPECT_EQ(*f.get_u64_opt(a + "attention.key_length") + *f.get_u64_opt(a + "attention.value_length"),
                          static_cast<uint64_t>(2 * mla.kv_lora_rank + mla.qk_rope));
                EXPECT_EQ(facts.kv_bytes_per_token_per_layer(),
                          static_cast<uint64_t>(std::ceil(static_cast<double>(mla.kv_lora_rank + mla.qk_rope) * bytes_per_element)));
            }
        }
    }
}

TEST(DeepSeek2, GpuOffloadIsRefusedWithTheReason) {
    const auto m = model::model::load(deepseek2_tiny("ds2-gpu").string());
    EXPECT_NE(model::gpu_unsupported_feature(*m).find("Multi-head Latent Attention"), std::string::npos);
    tiny_model_spec s;
    const auto llama_path = temp_dir("ds2-gpu-llama") / "m.gguf";
    write_tiny_model(s, llama_path);
    EXPECT_EQ(model::gpu_unsupported_feature(*model::model::load(llama_path.string())), "");
}

// Two sequences interleaved in one batch: each token is routed to its own experts, so the logits
// equal those of each sequence evaluated alone (and prefill in chunks equals one pass).
TEST(DeepSeek2, SequencesInOneBatchAreRoutedIndependently) {
    engine::engine_params ep;
    ep.model_path = deepseek2_tiny("ds2-seq").string();
    ep.kv_type = ggml_type::f32;
    ep.n_seq = 2;
    ep.n_threads = 2;
    engine::engine eng(ep);
    const std::vector<int32_t> a = {1, 40, 90, 160, 250, 7};
    const std::vector<int32_t> other = {1, 80, 27, 64};
    const std::vector<float> want_a = eng.all_logits(a);
    const std::vector<float> want_b = eng.all_logits(other);
    const size_t n_vocab = static_cast<size_t>(eng.hparams().n_vocab);

    eng.kv_mut().clear_all();
    model::batch b;
    for (size_t i = 0; i < a.size(); ++i) {
        b.add(a[i], static_cast<int64_t>(i), 0, true);
        if (i < other.size()) b.add(other[i], static_cast<int64_t>(i), 1, true);
    }
    auto logits = eng.forward().eval(eng.kv_mut(), b);
    size_t out = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_LT(max_abs_diff(&logits[out++ * n_vocab], &want_a[i * n_vocab], n_vocab), 1e-4f) << "seq 0 pos " << i;
        if (i < other.size()) {
            EXPECT_LT(max_abs_diff(&logits[out++ * n_vocab], &want_b[i * n_vocab], n_vocab), 1e-4f)
                << "seq 1 pos " << i;
        }
    }
    ep.n_seq = 1;
    ep.n_batch = 4;
    engine::engine chunked(ep);
    const std::vector<float> got = chunked.all_logits(a);
    EXPECT_LT(max_abs_diff(got.data(), want_a.data(), want_a.size()), 1e-4f);
}

}  // namespace
}  // namespace edgellm::test
