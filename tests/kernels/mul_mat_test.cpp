// mul_mat: every op table (generic, AVX2, ...) and the public dispatcher against the scalar
// reference, by normalized MSE with a per-type tolerance, on odd shapes, with guard bytes,
// NaN/Inf checks, and bit-identical results for 1 and N threads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <tuple>

#include "kernel_test_util.h"
#include "core/error.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

namespace edgellm {
namespace {

using test::nmse;

using test::tolerance;

// (type, n_cols multiplier of the block, n_rows, n_tokens)
using mm_param = std::tuple<ggml_type, int, int, int>;

class MulMat : public ::testing::TestWithParam<mm_param> {};

TEST_P(MulMat, EveryTableMatchesReferenceWithinTolerance) {
    const auto [type, n_blocks, n_rows, n_tokens] = GetParam();
    const int64_t n_cols = type_traits(type).block_size == 1 ? n_blocks * 32 + 5 : n_blocks * type_traits(type).block_size;
    const uint32_t seed = uint32_t(n_rows * 131 + n_tokens * 7 + n_blocks);
    const auto w = test::random_weights(type, n_rows, n_cols, seed);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), seed + 1);
    const size_t n_out = size_t(n_rows * n_tokens);

    std::vector<float> y_ref(n_out);
    kernels::ref::mul_mat(type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
    ASSERT_TRUE(test::all_finite(y_ref.data(), n_out));
    // sum over outputs of sum_c (w[r][c] * x[t][c])^2: the scale the quantization noise of a dot
    // product follows. Unlike sum(y_ref^2) it cannot be tiny through cancellation, so the bound
    // holds even for a single output.
    std::vector<float> wrow(static_cast<size_t>(n_cols));
    double product_norm = 0.0;
    for (int64_t r = 0; r < n_rows; ++r) {
        kernels::ref::get_row(type, w.data(), n_cols, r, wrow.data());
        for (int64_t t = 0; t < n_tokens; ++t)
            for (int64_t c = 0; c < n_cols; ++c) product_norm += double(wrow[c] * x[t * n_cols + c]) * (wrow[c] * x[t * n_cols + c]);
    }

    for (const auto& table : test::available_tables()) {
        SCOPED_TRACE(table.name);
        test::guarded_buffer y1(n_out), yn(n_out);
        kernels::cpu::mul_mat(*table.ops, type, w.data(), n_rows, n_cols, x.data(), n_tokens, y1.data(), 1);
        kernels::cpu::mul_mat(*table.ops, type, w.data(), n_rows, n_cols, x.data(), n_tokens, yn.data(), 3);
        EXPECT_TRUE(y1.guards_intact()) << "write outside the output (1 thread)";
        EXPECT_TRUE(yn.guards_intact()) << "write outside the output (3 threads)";
        ASSERT_TRUE(test::all_finite(y1.data(), n_out));
        double err = 0.0;
        for (size_t i = 0; i < n_out; ++i) err += (double(y1.data()[i]) - y_ref[i]) * (double(y1.data()[i]) - y_ref[i]);
        EXPECT_LE(err / product_norm, tolerance(type)) << "error relative to the summands";
        // The classic NMSE (relative to sum(y_ref^2)) is meaningful once there are enough outputs
        // for cancellation in individual dot products to average out.
        if (n_out >= 32) {
            EXPECT_LE(nmse(y1.data(), y_ref.data(), n_out), tolerance(type));
        }
        EXPECT_EQ(0, std::memcmp(y1.data(), yn.data(), n_out * sizeof(float))) << "1 and 3 threads differ";
    }
}

// Shapes: n_rows and n_tokens from the odd sizes the issue lists, paired so each type runs a
// handful of cases; n_cols of 1, 3, 9 and 17 blocks (F32/F16/BF16 add 5 columns to exercise tails;
// 9 and 17 blocks are one and two groups of eight plus one, the unit of the gathered dots).
std::vector<mm_param> mm_params() {
    const ggml_type types[] = {ggml_type::f32,  ggml_type::f16,  ggml_type::bf16, ggml_type::q4_0, ggml_type::q4_1,
                               ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0, ggml_type::q2_k, ggml_type::q3_k,
                               ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k};
    const std::pair<int, int> rows_tokens[] = {{1, 1}, {3, 2}, {17, 3}, {33, 5}, {127, 8}, {129, 13}, {1023, 1}};
    std::vector<mm_param> out;
    for (auto t : types)
        for (int nb : {1, 3, 9, 17})
            for (auto [r, tok] : rows_tokens) out.emplace_back(t, nb, r, tok);
    return out;
}

std::string mm_name(const ::testing::TestParamInfo<mm_param>& info) {
    const auto [t, nb, r, tok] = info.param;
    return std::string(type_name(t)) + "_b" + std::to_string(nb) + "_r" + std::to_string(r) + "_t" + std::to_string(tok);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MulMat, ::testing::ValuesIn(mm_params()), mm_name);

TEST(MulMatDispatch, PublicEntryUsesBestTableAndForceReferenceIsExact) {
    const int64_t n_rows = 33, n_cols = 256, n_tokens = 3;
    const auto w = test::random_weights(ggml_type::q4_k, n_rows, n_cols, 5);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), 6);
    std::vector<float> y_ref(size_t(n_rows * n_tokens)), y(y_ref.size());
    kernels::ref::mul_mat(ggml_type::q4_k, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());

    kernels::set_force_reference(true);
    EXPECT_EQ(kernels::active_impl(), kernels::impl::reference);
    kernels::mul_mat(ggml_type::q4_k, w.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 2);
    EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)));

    kernels::set_force_reference(false);
    EXPECT_NE(kernels::active_impl(), kernels::impl::reference);
    kernels::mul_mat(ggml_type::q4_k, w.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 2);
    EXPECT_LE(nmse(y.data(), y_ref.data(), y.size()), tolerance(ggml_type::q4_k));
}

// --deterministic: with kernels::batch_invariant on, each token row of a product of N tokens is
// bit-identical to the product of that token alone, for every op table, the public entry and the
// packed (repacked) product, on odd token counts and row counts with a packed tail.
TEST(MulMatBatchInvariant, EveryRowEqualsItsOneTokenProductBitForBit) {
    const ggml_type types[] = {ggml_type::f32, ggml_type::f16,  ggml_type::bf16, ggml_type::q4_0, ggml_type::q4_1,
                               ggml_type::q8_0, ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k};
    const int64_t n_rows = 43;  // five packed groups of 8 and a tail of 3
    for (const ggml_type type : types) {
        SCOPED_TRACE(type_name(type));
        const int64_t bs = type_traits(type).block_size;
        const int64_t n_cols = bs == 1 ? 2 * 32 + 5 : (bs >= 256 ? 2 : 9) * bs;
        const auto w = test::random_weights(type, n_rows, n_cols, 11);
        std::vector<uint8_t> packed(kernels::packed_size(type, n_rows, n_cols));
        if (!packed.empty()) kernels::pack_weights(type, w.data(), n_rows, n_cols, packed.data(), 2);
        const kernels::batch_invariant_scope on(true);
        ASSERT_TRUE(kernels::batch_invariant());
        for (const int64_t n_tokens : {2, 3, 5, 17}) {
            SCOPED_TRACE(n_tokens);
            const auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(n_tokens));
            // name, product of `n` tokens from x0 into y
            std::vector<std::pair<std::string, std::function<void(const float*, int64_t, float*)>>> paths;
            for (const auto& table : test::available_tables())
                paths.emplace_back(table.name, [&, ops = table.ops](const float* x0, int64_t n, float* y) {
                    kernels::cpu::mul_mat(*ops, type, w.data(), n_rows, n_cols, x0, n, y, 3);
                });
            paths.emplace_back("public", [&](const float* x0, int64_t n, float* y) {
                kernels::mul_mat(type, w.data(), n_rows, n_cols, x0, n, y, 3);
            });
            if (!packed.empty())
                paths.emplace_back("packed", [&](const float* x0, int64_t n, float* y) {
                    kernels::mul_mat_packed(type, packed.data(), n_rows, n_cols, x0, n, y, 3);
                });
            for (const auto& [name, product] : paths) {
                SCOPED_TRACE(name);
                std::vector<float> all(static_cast<size_t>(n_rows * n_tokens));
                std::vector<float> one(static_cast<size_t>(n_rows));
                product(x.data(), n_tokens, all.data());
                for (int64_t t = 0; t < n_tokens; ++t) {
                    product(x.data() + t * n_cols, 1, one.data());
                    EXPECT_EQ(0, std::memcmp(one.data(), all.data() + t * n_rows, one.size() * sizeof(float)))
                        << "token " << t << " of " << n_tokens;
                }
            }
        }
    }
    EXPECT_FALSE(kernels::batch_invariant()) << "the scope restores the previous setting";
}

TEST(MulMatDispatch, RejectsColumnsNotMultipleOfBlock) {
    std::vector<uint8_t> w(1024);
    std::vector<float> x(40), y(1);
    EXPECT_THROW(kernels::mul_mat(ggml_type::q4_0, w.data(), 1, 40, x.data(), 1, y.data(), 1), error);
}

TEST(MulMatDispatch, ZeroRowsOrTokensWriteNothing) {
    std::vector<uint8_t> w(row_size(ggml_type::q8_0, 64) * 4);
    std::vector<float> x(64);
    test::guarded_buffer y(0);
    kernels::mul_mat(ggml_type::q8_0, w.data(), 0, 64, x.data(), 1, y.data(), 2);
    kernels::mul_mat(ggml_type::q8_0, w.data(), 4, 64, x.data(), 0, y.data(), 2);
    EXPECT_TRUE(y.guards_intact());
}

// The environment switch: a child run of this binary with EDGELLM_FORCE_REF=1 must report the
// reference implementation (checked by the child test below, which only asserts under the env).
TEST(MulMatDispatch, DISABLED_EnvForcesReferenceChild) {
    const char* env = std::getenv("EDGELLM_FORCE_REF");
    ASSERT_TRUE(env && std::string(env) == "1") << "runs only as the child of EnvSwitchForcesReference";
    EXPECT_EQ(kernels::active_impl(), kernels::impl::reference);
}

TEST(MulMatDispatch, EnvSwitchForcesReference) {
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string cmd = "EDGELLM_FORCE_REF=1 '" + self +
                            "' --gtest_filter=MulMatDispatch.DISABLED_EnvForcesReferenceChild --gtest_also_run_disabled_tests"
                            " > /dev/null 2>&1";
    EXPECT_EQ(0, std::system(cmd.c_str())) << "child run with EDGELLM_FORCE_REF=1 failed";
}

}  // namespace
}  // namespace edgellm
