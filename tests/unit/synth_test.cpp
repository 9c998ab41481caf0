// Unit tests of `synth`: llama.cpp's type-mix rules, the built-in vocab, and that written files
// read back with the shapes, metadata and sane weight statistics promised.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include "quant/quant.h"
#include "test_util.h"

namespace edgellm::synth {
namespace {

std::string read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(synth_mix, q4_k_m_follows_llama_cpp) {
    const auto& m = find_type_mix("Q4_K_M");
    EXPECT_EQ(m.file_type, 15u);
    EXPECT_EQ(tensor_type(m, "output.weight", 21, 22, 2048, 8, false), ggml_type::q6_k);
    EXPECT_EQ(tensor_type(m, "token_embd.weight", 0, 22, 2048, 8, false), ggml_type::q4_k);
    EXPECT_EQ(tensor_type(m, "blk.0.attn_norm.weight", 0, 22, 2048, 8, false), ggml_type::f32);
    EXPECT_EQ(tensor_type(m, "blk.5.attn_q.weight", 5, 22, 2048, 8, false), ggml_type::q4_k);
    // use_more_bits(il, 22): il < 2, il >= 19, or (il - 2) % 3 == 2.
    int n_q6 = 0;
    for (int il = 0; il < 22; ++il) {
        const auto t = tensor_type(m, "blk." + std::to_string(il) + ".attn_v.weight", il, 22, 2048, 8, false);
        const bool more = il < 2 || il >= 19 || (il - 2) % 3 == 2;
        EXPECT_EQ(t, more ? ggml_type::q6_k : ggml_type::q4_k) << il;
        n_q6 += t == ggml_type::q6_k;
        EXPECT_EQ(tensor_type(m, "blk.1.ffn_down.weight", il, 22, 5632, 8, false), t);
    }
    EXPECT_EQ(n_q6, 10);  // 2 first + 3 last + every third between
}

TEST(synth_mix, q2_k_and_q3_k_m_bump_the_sensitive_tensors) {
    const auto& q2 = find_type_mix("q2_k");
    EXPECT_EQ(tensor_type(q2, "blk.3.attn_v.weight", 3, 22, 2048, 8, false), ggml_type::q4_k);
    EXPECT_EQ(tensor_type(q2, "blk.3.attn_v.weight", 3, 22, 2048, 1, false), ggml_type::q3_k);
    EXPECT_EQ(tensor_type(q2, "blk.3.ffn_down.weight", 3, 22, 5632, 8, false), ggml_type::q3_k);
    EXPECT_EQ(tensor_type(q2, "blk.3.attn_output.weight", 3, 22, 2048, 8, false), ggml_type::q3_k);
    EXPECT_EQ(tensor_type(q2, "blk.3.ffn_up.weight", 3, 22, 2048, 8, false), ggml_type::q2_k);
    const auto& q3m = find_type_mix("q3_k_m");
    EXPECT_EQ(tensor_type(q3m, "blk.0.attn_v.weight", 0, 22, 2048, 8, false), ggml_type::q5_k);
    EXPECT_EQ(tensor_type(q3m, "blk.9.attn_v.weight", 9, 22, 2048, 8, false), ggml_type::q4_k);
    EXPECT_EQ(tensor_type(q3m, "blk.0.ffn_down.weight", 0, 22, 5632, 8, false), ggml_type::q5_k);
    EXPECT_EQ(tensor_type(q3m, "blk.9.ffn_down.weight", 9, 22, 5632, 8, false), ggml_type::q4_k);
}

TEST(synth_mix, pure_and_row_length_fallbacks) {
    const auto& m = find_type_mix("q4_k_m");
    EXPECT_EQ(tensor_type(m, "output.weight", 0, 2, 256, 2, true), ggml_type::q4_k);
    // 576 is not a multiple of 256 (SmolLM's width): llama.cpp falls back per type.
    EXPECT_EQ(tensor_type(m, "blk.0.attn_q.weight", 0, 30, 576, 3, false), ggml_type::q5_0);
    EXPECT_EQ(tensor_type(m, "output.weight", 0, 30, 576, 3, false), ggml_type::q8_0);
    EXPECT_EQ(tensor_type(find_type_mix("q5_k"), "blk.0.attn_q.weight", 0, 30, 576, 3, false), ggml_type::q5_1);
    EXPECT_EQ(tensor_type(find_type_mix("q4_0"), "blk.0.attn_q.weight", 0, 2, 48, 1, false), ggml_type::f16);
    EXPECT_EQ(tensor_type(find_type_mix("q8_0"), "output.weight", 0, 2, 256, 1, false), ggml_type::q8_0);
    EXPECT_EQ(tensor_type(find_type_mix("bf16"), "output.weight", 0, 2, 256, 1, false), ggml_type::bf16);
}

TEST(synth_mix, unknown_names_list_the_known_ones) {
    try {
        find_type_mix("q7_k");
        FAIL();
    } catch (const usage_error& e) {
        EXPECT_NE(std::string(e.what()).find("q4_k_m"), std::string::npos) << e.what();
    }
    EXPECT_THROW(find_shape("huge"), usage_error);
    EXPECT_EQ(find_shape("tinyllama-1.1b").n_ff, 5632);
}

TEST(synth_vocab, builtin_vocab_is_a_valid_spm_byte_vocab) {
    const auto v = builtin_vocab(0);
    ASSERT_GT(v.tokens.size(), 259u);
    EXPECT_EQ(v.tokens[0], "<unk>");
    EXPECT_EQ(v.tokens[1], "<s>");
    EXPECT_EQ(v.tokens[2], "</s>");
    EXPECT_EQ(v.tokens[3 + 0x0A], "<0x0A>");
    EXPECT_EQ(v.token_types[3 + 0xFF], 6);
    EXPECT_EQ(std::set<std::string>(v.tokens.begin(), v.tokens.end()).size(), v.tokens.size()) << "duplicates";
    EXPECT_EQ(v.tokens.size(), v.scores.size());
    EXPECT_EQ(v.tokens.size(), v.token_types.size());
    const auto padded = builtin_vocab(32000);
    EXPECT_EQ(padded.tokens.size(), 32000u);
    EXPECT_EQ(std::set<std::string>(padded.tokens.begin(), padded.tokens.end()).size(), 32000u);
}

TEST(synth_file, tiny_model_reads_back_with_metadata_shapes_and_sane_weights) {
    const auto dir = test::temp_dir("synth");
    const auto path = dir / "tiny.gguf";
    options o;
    o.type = "q4_k_m";
    o.seed = 5;
    const auto s = write_model(path.string(), o);
    const auto f = gguf::file::open(path.string());
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_u64("general.file_type"), 15u);
    EXPECT_EQ(f.get_u64("llama.block_count"), 2u);
    EXPECT_EQ(f.get_u64("llama.rope.dimension_count"), 64u);
    EXPECT_EQ(f.get_array("tokenizer.ggml.tokens").items.size(), s.n_vocab);
    EXPECT_EQ(f.tensors().size(), 2u * 9 + 3);
    EXPECT_EQ(s.file_bytes, std::filesystem::file_size(path));
    const auto* q = f.find_tensor("blk.1.attn_q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->type, ggml_type::q4_k);
    EXPECT_EQ(q->ne[0], 256);
    EXPECT_EQ(q->ne[1], 256);
    const auto* k = f.find_tensor("blk.0.attn_k.weight");
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->ne[1], 128);  // 2 KV heads x 64
    // Weights are ~N(0, 1/256): check mean and std of the dequantized matrix.
    std::vector<float> row(256);
    double sum = 0, sum2 = 0;
    for (int64_t r = 0; r < q->ne[1]; ++r) {
        dequantize_row(q->type, q->data + r * row_size(q->type, 256), row.data(), 256);
        for (float v : row) {
            ASSERT_TRUE(std::isfinite(v));
            sum += v;
            sum2 += double(v) * v;
        }
    }
    const double n = 256.0 * 256.0;
    EXPECT_NEAR(sum / n, 0.0, 0.002);
    EXPECT_NEAR(std::sqrt(sum2 / n), 1.0 / 16, 0.006);
    const auto* norm = f.find_tensor("output_norm.weight");
    ASSERT_NE(norm, nullptr);
    EXPECT_EQ(norm->n_dims, 1);
    EXPECT_EQ(reinterpret_cast<const float*>(norm->data)[17], 1.0f);
    std::filesystem::remove_all(dir);
}

TEST(synth_file, deterministic_under_a_seed_and_independent_of_threads) {
    const auto dir = test::temp_dir("synth-det");
    options o;
    o.type = "q8_0";
    write_model((dir / "a.gguf").string(), o);
    write_model((dir / "b.gguf").string(), o);
    o.seed = 43;
    write_model((dir / "c.gguf").string(), o);
    EXPECT_EQ(read_bytes(dir / "a.gguf"), read_bytes(dir / "b.gguf"));
    EXPECT_NE(read_bytes(dir / "a.gguf"), read_bytes(dir / "c.gguf"));
    std::filesystem::remove_all(dir);
}

TEST(synth_file, vocab_from_copies_every_tokenizer_key) {
    EDGELLM_REQUIRE_SHARED(vocab, "tokenizer/ggml-vocab-llama-spm.gguf");
    const auto dir = test::temp_dir("synth-vocab");
    options o;
    o.type = "q4_0";
    o.vocab_from = vocab.string();
    const auto s = write_model((dir / "m.gguf").string(), o);
    const auto src = gguf::file::open(vocab.string());
    const auto out = gguf::file::open((dir / "m.gguf").string());
    EXPECT_EQ(s.n_vocab, 32000u);
    EXPECT_EQ(out.find_tensor("token_embd.weight")->ne[1], 32000);
    int n_keys = 0;
    for (const auto& [key, val] : src.metadata()) {
        if (key.rfind("tokenizer.", 0) != 0) continue;
        ++n_keys;
        ASSERT_TRUE(out.has(key)) << key;
        EXPECT_EQ(out.get(key).type, val.type) << key;
    }
    EXPECT_GT(n_keys, 3);
    std::filesystem::remove_all(dir);
}

TEST(synth_file, bad_options_are_usage_errors) {
    const auto dir = test::temp_dir("synth-bad");
    options o;
    o.shape = "nope";
    EXPECT_THROW(write_model((dir / "x.gguf").string(), o), usage_error);
    o.shape = "tiny";
    o.type = "iq2_xxs";
    EXPECT_THROW(write_model((dir / "x.gguf").string(), o), usage_error);
    o.type = "f16";
    o.vocab_from = (dir / "missing.gguf").string();
    EXPECT_THROW(write_model((dir / "x.gguf").string(), o), error);
    EXPECT_FALSE(std::filesystem::exists(dir / "x.gguf"));
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgellm::synth
