// The device-memory plan of -ngl and the "fewer GPU layers" fallback rung, which run in every
// build (no GPU needed): the bytes a placement needs, checked against the GGUF file's own tensor
// sizes, and the rung the chooser takes for a given amount of free device memory.
#include <gtest/gtest.h>

#include <string>

#include "gguf/gguf.h"
#include "model/gpu_layers.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

namespace edgellm::test {
namespace {

struct GpuLayersPlan : ::testing::Test {
    static void SetUpTestSuite() {
        path_ = (temp_dir("gpu-plan") / "tiny-q8.gguf").string();
        synth::options o;
        o.shape = "tiny";
        o.type = "q8_0";
        o.n_layer = 6;
        synth::write_model(path_, o);
    }
    static std::string path_;
};
std::string GpuLayersPlan::path_;

// Bytes of layer il's weights the GPU copies, from the file's tensor table.
uint64_t file_layer_bytes(const gguf::file& f, int il) {
    uint64_t n = 0;
    for (const char* t : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
        const gguf::tensor_info* ti = f.find_tensor("blk." + std::to_string(il) + "." + t + ".weight");
        EXPECT_NE(ti, nullptr) << t;
        if (ti) n += ti->size_bytes;
    }
    return n;
}

TEST_F(GpuLayersPlan, DeviceBytesAreTheOffloadedTensorsPlusTheirKvCache) {
    const auto m = model::model::load(path_);
    const auto& hp = m->hparams();
    const int64_t n_ctx = 96, n_batch = 8;
    auto bytes = [&](int n, ggml_type kv = ggml_type::f16) {
        return model::gpu_layers_device_bytes(*m, n, n_ctx, kv, n_batch);
    };
    EXPECT_EQ(bytes(0), 0u);
    const uint64_t kv_f16 = 2ull * uint64_t(n_ctx * hp.kv_dim()) * 2;
    // Each further layer (they are offloaded from the last one down) adds its file tensors and KV.
    for (int n = 2; n <= hp.n_layer; ++n)
        EXPECT_EQ(bytes(n) - bytes(n - 1), file_layer_bytes(m->file(), int(hp.n_layer) - n) + kv_f16) << n;
    // n_layer + 1 adds the output matrix and its logits buffer.
    const gguf::tensor_info* out = m->file().find_tensor("output.weight");
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(bytes(int(hp.n_layer) + 1) - bytes(int(hp.n_layer)), out->size_bytes + uint64_t(n_batch * hp.n_vocab) * 4);
    // An F32 KV cache doubles the KV part only.
    EXPECT_EQ(bytes(3, ggml_type::f32) - bytes(3), 3 * kv_f16);
}

TEST_F(GpuLayersPlan, FewerGpuLayersRungTakesTheLargestQuarterThatFits) {
    const auto m = model::model::load(path_);
    const int n_layer = int(m->hparams().n_layer);  // 6
    auto need = [&](int n) { return model::gpu_layers_device_bytes(*m, n, 128, ggml_type::f16, 16); };

    // Everything fits: the request stands, no note.
    auto c = model::choose_gpu_layers(n_layer + 1, n_layer, need(n_layer + 1), need);
    EXPECT_EQ(c.n_gpu_layers, n_layer + 1);
    EXPECT_TRUE(c.note.empty());
    EXPECT_TRUE(c.tried.empty());

    // One byte short of the whole model: 3/4 of the layers (4 of 6), the output stays on the CPU.
    c = model::choose_gpu_layers(n_layer + 1, n_layer, need(n_layer + 1) - 1, need);
    EXPECT_EQ(c.n_gpu_layers, n_layer * 3 / 4);
    ASSERT_EQ(c.tried.size(), 1u);
    EXPECT_NE(c.note.find("4 of 6 layers on the GPU"), std::string::npos) << c.note;
    EXPECT_NE(c.note.find("asked -ngl 7"), std::string::npos) << c.note;

    // Room for 3 layers but not 4: the half rung.
    c = model::choose_gpu_layers(n_layer, n_layer, need(3), need);
    EXPECT_EQ(c.n_gpu_layers, 3);
    EXPECT_EQ(c.tried.size(), 2u);

    // Not even a quarter: every layer on the CPU, each miss named.
    c = model::choose_gpu_layers(n_layer, n_layer, need(1) - 1, need);
    EXPECT_EQ(c.n_gpu_layers, 0);
    EXPECT_EQ(c.tried.size(), 4u) << c.note;  // 6, 4, 3, 1
    EXPECT_NE(c.note.find("0 of 6 layers on the GPU"), std::string::npos) << c.note;

    // No device (0 bytes free): CPU.
    EXPECT_EQ(model::choose_gpu_layers(2, n_layer, 0, need).n_gpu_layers, 0);
    // -ngl far beyond the model counts as every layer plus the output: fits, no note.
    c = model::choose_gpu_layers(999, n_layer, need(n_layer + 1), need);
    EXPECT_EQ(c.n_gpu_layers, n_layer + 1);
    EXPECT_TRUE(c.note.empty()) << c.note;
    c = model::choose_gpu_layers(999, n_layer, need(n_layer + 1) - 1, need);
    EXPECT_EQ(c.n_gpu_layers, n_layer * 3 / 4);
    EXPECT_NE(c.note.find("asked -ngl 999"), std::string::npos) << c.note;
}

}  // namespace
}  // namespace edgellm::test
