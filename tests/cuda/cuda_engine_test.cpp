// The engine with layers on the GPU (-ngl, model::gpu_layers) against the same engine on the
// CPU: stories260K's reference greedy run with every layer and the output offloaded, partial
// offload, and logits of random tiny models of every weight type the CUDA kernels take, for a
// prompt (the tiled GEMM) and token-by-token decode (the mat-vec and int8 paths). Needs a CUDA
// device: with none, main() prints why and exits 77 (CTest: skipped).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "engine/engine.h"
#include "kernels/cuda/cuda_ops.h"
#include "model/gpu_layers.h"
#include "kernels/kernel_test_util.h"
#include "model_fixture.h"
#include "test_util.h"

namespace edgellm {
namespace {

using test::tiny_model_spec;

double nmse(const std::vector<float>& got, const std::vector<float>& want) {
    return test::nmse(got.data(), want.data(), want.size());
}

std::vector<int32_t> greedy(engine::engine& e, std::vector<int32_t> prompt, int n) {
    engine::generation_params gp;
    gp.n_predict = n;
    gp.sampling.temperature = 0;
    gp.ignore_eos = true;
    std::vector<int32_t> out;
    e.generate(prompt, gp, [&](int32_t t) {
        out.push_back(t);
        return true;
    });
    return out;
}

// Logits of a 20-token prompt in one pass, then of 5 single-token decode steps.
std::vector<float> prompt_and_decode_logits(engine::engine& e) {
    std::vector<int32_t> toks = {1, 5, 17, 33, 2, 60, 9, 9, 41, 12, 3, 66, 0, 25, 7, 18, 50, 4, 11, 29};
    std::vector<float> all = e.all_logits(toks);
    model::kv_cache& kv = e.kv_mut();
    for (int i = 0; i < 5; ++i) {
        model::batch b;
        b.add(static_cast<int32_t>(3 + 7 * i), static_cast<int64_t>(toks.size()) + i, 0, true);
        auto l = e.forward().eval(kv, b);
        all.insert(all.end(), l.begin(), l.end());
    }
    return all;
}

engine::engine_params params(const std::string& path, int ngl) {
    engine::engine_params ep;
    ep.model_path = path;
    ep.n_threads = 2;
    ep.n_ctx = 64;
    ep.n_gpu_layers = ngl;
    return ep;
}

TEST(CudaEngine, Stories260KGreedyMatchesTheReferenceFullyOffloaded) {
    EDGELLM_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
    EDGELLM_REQUIRE_SHARED(ids_path, "models/stories260K.greedy.ids.txt");
    const std::vector<int32_t> want = test::read_ids(ids_path);
    auto ep = params(model_path.string(), 99);
    ep.n_ctx = 0;
    engine::engine gpu(ep);
    ASSERT_NE(gpu.gpu_description().find("5 of 5 layers and the output layer"), std::string::npos)
        << gpu.gpu_description();
    const auto got = greedy(gpu, {gpu.hparams().bos_id}, 64);
    EXPECT_EQ(got, std::vector<int32_t>(want.begin(), want.begin() + 64));
}

TEST(CudaEngine, PartialOffloadGivesTheCpuLogits) {
    EDGELLM_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
    engine::engine cpu(params(model_path.string(), 0));
    const auto want = prompt_and_decode_logits(cpu);
    for (int ngl : {1, 3, 5, 6}) {
        engine::engine gpu(params(model_path.string(), ngl));
        EXPECT_EQ(gpu.forward().gpu()->first_layer(), 5 - std::min(ngl, 5));
        EXPECT_EQ(gpu.forward().gpu()->output_on_gpu(), ngl > 5);
        const double e = nmse(prompt_and_decode_logits(gpu), want);
        std::printf("-ngl %d: NMSE of GPU vs CPU logits %.3g\n", ngl, e);
        EXPECT_LE(e, 1e-9) << "-ngl " << ngl;
    }
}

class CudaEngineTypes : public ::testing::TestWithParam<ggml_type> {};

TEST_P(CudaEngineTypes, LogitsMatchTheCpuEngine) {
    const ggml_type t = GetParam();
    tiny_model_spec s;
    s.weight_type = t;
    if (type_traits(t).block_size == 256) {  // k-quants: rows of whole 256-blocks
        s.n_embd = 256;
        s.n_ff = 512;
        s.n_head = 4;
    }
    s.rope_freqs = t == ggml_type::q8_0;
    s.tied = t == ggml_type::q4_0;
    const auto path = test::temp_dir("cuda-engine") / "m.gguf";
    test::write_tiny_model(s, path);
    engine::engine cpu(params(path.string(), 0));
    engine::engine gpu(params(path.string(), 99));
    const auto want = prompt_and_decode_logits(cpu);
    const auto got = prompt_and_decode_logits(gpu);
    ASSERT_EQ(got.size(), want.size());
    // The CPU quantizes activations to 8 bits for quantized weights and the GPU's decode int8
    // path does the same; its other paths use the f32 activations: the logits differ by that
    // rounding, not by the math.
    const bool quantized = !(t == ggml_type::f32 || t == ggml_type::f16 || t == ggml_type::bf16);
    const double e = nmse(got, want);
    std::printf("%s: NMSE of GPU vs CPU logits %.3g\n", std::string(type_name(t)).c_str(), e);
    EXPECT_LE(e, quantized ? 2e-3 : 1e-8) << type_name(t);
    std::filesystem::remove_all(path.parent_path());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaEngineTypes,
                         ::testing::Values(ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q4_0,
                                           ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0,
                                           ggml_type::q2_k, ggml_type::q3_k, ggml_type::q4_k, ggml_type::q5_k,
                                           ggml_type::q6_k),
                         [](const auto& info) { return std::string(type_name(info.param)); });

TEST(CudaEngine, WhatCannotBeOffloadedIsRefusedWithTheReason) {
    const auto dir = test::temp_dir("cuda-refuse");
    tiny_model_spec q2;
    q2.arch = "qwen2";
    test::write_tiny_model(q2, dir / "q2.gguf");
    try {
        engine::engine e(params((dir / "q2.gguf").string(), 99));
        FAIL() << "qwen2 (biases) was offloaded";
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("Q/K/V biases"), std::string::npos) << e.what();
    }
    test::write_tiny_model({}, dir / "l.gguf");
    auto ep = params((dir / "l.gguf").string(), 99);
    ep.kv_type = ggml_type::q8_0;
    EXPECT_THROW(engine::engine{ep}, usage_error);
    ep = params((dir / "l.gguf").string(), 99);
    ep.n_seq = 2;
    EXPECT_THROW(engine::engine{ep}, usage_error);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgellm

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (!edgellm::kernels::cuda::available()) {
        std::printf("no CUDA device: skipping the GPU engine tests\n");
        return 77;
    }
    return RUN_ALL_TESTS();
}
