// Model loading: hyperparameters come from metadata, every tensor is checked for presence and
// shape, unsupported architectures are named, tied embeddings and per-arch extras are found.
#include <gtest/gtest.h>

#include "model/model.h"
#include "model_fixture.h"
#include "test_util.h"

namespace edgellm::test {
namespace {

std::string load_error(const tiny_model_spec& s, const std::string& tag) {
    const auto path = temp_dir(tag) / "m.gguf";
    write_tiny_model(s, path);
    try {
        model::model::load(path.string());
    } catch (const error& e) {
        return e.what();
    }
    return "";
}

TEST(ModelLoad, HparamsComeFromMetadata) {
    tiny_model_spec s;
    s.n_layer = 3;
    s.n_embd = 48;
    s.n_head = 6;
    s.n_head_kv = 3;
    s.n_ff = 80;
    const auto path = temp_dir("hp") / "m.gguf";
    write_tiny_model(s, path);
    auto m = model::model::load(path.string());
    const auto& hp = m->hparams();
    EXPECT_EQ(hp.arch, "llama");
    EXPECT_EQ(hp.n_layer, 3);
    EXPECT_EQ(hp.n_embd, 48);
    EXPECT_EQ(hp.n_head, 6);
    EXPECT_EQ(hp.n_head_kv, 3);
    EXPECT_EQ(hp.head_dim, 8);
    EXPECT_EQ(hp.n_rot, 8);
    EXPECT_EQ(hp.n_ff, 80);
    EXPECT_EQ(hp.n_vocab, s.n_vocab);
    EXPECT_EQ(hp.n_ctx_train, s.n_ctx_train);
    EXPECT_EQ(hp.rope, kernels::rope_mode::normal);
    EXPECT_FALSE(hp.tied_embeddings);
    EXPECT_EQ(hp.bos_id, 1);
    EXPECT_EQ(hp.eos_id, 2);
    EXPECT_EQ(m->weights().layers.size(), 3u);
    EXPECT_NE(m->weights().output.data, m->weights().token_embd.data);
}

TEST(ModelLoad, StoriesHparams) {
    EDGELLM_REQUIRE_SHARED(path, "models/stories260K.gguf");
    auto m = model::model::load(path.string());
    const auto& hp = m->hparams();
    EXPECT_EQ(hp.n_layer, 5);
    EXPECT_EQ(hp.n_embd, 64);
    EXPECT_EQ(hp.n_head, 8);
    EXPECT_EQ(hp.n_head_kv, 4);
    EXPECT_EQ(hp.head_dim, 8);
    EXPECT_EQ(hp.n_ff, 172);
    EXPECT_EQ(hp.n_vocab, 512);
}

TEST(ModelLoad, TiedEmbeddingsWhenOutputIsAbsent) {
    tiny_model_spec s;
    s.tied = true;
    const auto path = temp_dir("tied") / "m.gguf";
    write_tiny_model(s, path);
    auto m = model::model::load(path.string());
    EXPECT_TRUE(m->hparams().tied_embeddings);
    EXPECT_EQ(m->weights().output.data, m->weights().token_embd.data);
}

TEST(ModelLoad, MissingTensorIsNamed) {
    tiny_model_spec s;
    s.drop.insert("blk.1.ffn_up.weight");
    EXPECT_EQ(load_error(s, "missing"), "model is missing tensor blk.1.ffn_up.weight");
}

TEST(ModelLoad, WrongShapeIsNamedWithBothShapes) {
    tiny_model_spec s;
    s.bad_shape = "blk.1.attn_q.weight";
    const std::string msg = load_error(s, "shape");
    EXPECT_NE(msg.find("tensor blk.1.attn_q.weight has shape [65, 64], expected [64, 64]"), std::string::npos) << msg;
}

TEST(ModelLoad, WrongNormShapeIsNamed) {
    tiny_model_spec s;
    s.bad_shape = "output_norm.weight";
    const std::string msg = load_error(s, "normshape");
    EXPECT_NE(msg.find("tensor output_norm.weight has shape [65], expected [64]"), std::string::npos) << msg;
}

TEST(ModelLoad, UnsupportedArchitectureListsSupportedOnes) {
    tiny_model_spec s;
    s.arch = "gpt9";
    const std::string msg = load_error(s, "arch");
    EXPECT_NE(msg.find("unsupported model architecture 'gpt9'"), std::string::npos) << msg;
    for (const char* a : {"llama", "qwen2", "qwen3"}) EXPECT_NE(msg.find(a), std::string::npos) << msg;
}

TEST(ModelLoad, Qwen2NeedsBiasesAndUsesNeox) {
    tiny_model_spec s;
    s.arch = "qwen2";
    const auto path = temp_dir("qwen2") / "m.gguf";
    write_tiny_model(s, path);
    auto m = model::model::load(path.string());
    EXPECT_EQ(m->hparams().rope, kernels::rope_mode::neox);
    EXPECT_NE(m->weights().layers[0].bq, nullptr);
    EXPECT_EQ(m->weights().layers[0].q_norm, nullptr);

    s.drop.insert("blk.0.attn_k.bias");
    EXPECT_EQ(load_error(s, "qwen2b"), "model is missing tensor blk.0.attn_k.bias");
}

TEST(ModelLoad, Qwen3HasPerHeadNorms) {
    tiny_model_spec s;
    s.arch = "qwen3";
    const auto path = temp_dir("qwen3") / "m.gguf";
    write_tiny_model(s, path);
    auto m = model::model::load(path.string());
    EXPECT_EQ(m->hparams().rope, kernels::rope_mode::neox);
    EXPECT_NE(m->weights().layers[1].q_norm, nullptr);
    EXPECT_NE(m->weights().layers[1].k_norm, nullptr);
    EXPECT_EQ(m->weights().layers[1].bq, nullptr);
}

TEST(ModelLoad, RopeScalingAndHeadDimFromMetadata) {
    tiny_model_spec s;
    s.extra_kv = {{"llama.rope.scaling.type", gguf::value::make_string("linear")},
                  {"llama.rope.scaling.factor", gguf::value::make_f32(4.0f)},
                  {"llama.rope.freq_base", gguf::value::make_f32(500000.0f)},
                  {"llama.rope.dimension_count", gguf::value::make_u32(8)}};
    const auto path = temp_dir("rope") / "m.gguf";
    write_tiny_model(s, path);
    auto m = model::model::load(path.string());
    const auto& hp = m->hparams();
    EXPECT_FLOAT_EQ(hp.rope_freq_scale, 0.25f);
    EXPECT_FLOAT_EQ(hp.rope_freq_base, 500000.0f);
    EXPECT_EQ(hp.n_rot, 8);
    EXPECT_EQ(hp.head_dim, 16);
    EXPECT_EQ(m->weights().rope_freqs, nullptr);

    // Llama 3.1 factors: one per rotated pair (head_dim / 2 = 8 here, but n_rot / 2 = 4 wanted).
    s.rope_freqs = true;
    EXPECT_NE(load_error(s, "rope2").find("tensor rope_freqs.weight has shape [8], expected [4]"), std::string::npos);
    s.extra_kv.pop_back();  // n_rot = head_dim = 16: 8 factors fit
    const auto path3 = temp_dir("rope3") / "m.gguf";
    write_tiny_model(s, path3);
    auto m3 = model::model::load(path3.string());
    ASSERT_NE(m3->weights().rope_freqs, nullptr);
    EXPECT_EQ(m3->hparams().n_rot, 16);
}

TEST(ModelLoad, UnsupportedRopeScalingIsRefused) {
    tiny_model_spec s;
    s.extra_kv = {{"llama.rope.scaling.type", gguf::value::make_string("yarn")},
                  {"llama.rope.scaling.factor", gguf::value::make_f32(4.0f)}};
    const std::string msg = load_error(s, "yarn");
    EXPECT_NE(msg.find("rope scaling type 'yarn' is not supported"), std::string::npos) << msg;
}

TEST(ModelLoad, ExplicitKeyLengthSetsHeadDim) {
    tiny_model_spec s;
    s.n_embd = 64;
    s.n_head = 4;
    s.extra_kv = {{"llama.attention.key_length", gguf::value::make_u32(16)}};
    const auto path = temp_dir("keylen") / "m.gguf";
    write_tiny_model(s, path);
    EXPECT_EQ(model::model::load(path.string())->hparams().head_dim, 16);
    s.extra_kv = {{"llama.attention.key_length", gguf::value::make_u32(32)}};
    // With head_dim 32 the Q projection must be [64, 128]: the file's [64, 64] is refused.
    const std::string msg = load_error(s, "keylen2");
    EXPECT_NE(msg.find("tensor blk.0.attn_q.weight has shape [64, 64], expected [64, 128]"), std::string::npos) << msg;
}

TEST(ModelLoad, MissingRequiredMetadataIsNamed) {
    tiny_model_spec s;
    s.extra_kv = {{"llama.block_count", gguf::value::make_u32(0)}};
    EXPECT_NE(load_error(s, "meta").find("'llama.block_count' = 0 is out of range"), std::string::npos);
}

TEST(ModelLoad, QuantizedMatricesStayInTheMapping) {
    tiny_model_spec s;
    s.weight_type = ggml_type::q8_0;
    const auto path = temp_dir("q8") / "m.gguf";
    write_tiny_model(s, path);
    auto m = model::model::load(path.string());
    const auto* t = m->file().find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(m->weights().layers[0].wq.data, t->data);
    EXPECT_EQ(m->weights().layers[0].wq.type, ggml_type::q8_0);
}

}  // namespace
}  // namespace edgellm::test
