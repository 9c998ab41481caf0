// Q8_0 x8 packed layout: byte-exact round trip, and the AVX2 / AVX-512 VNNI gemms (called directly,
// per group) against the scalar reference product and the plain Q8_0 dot on odd shapes, token
// tiling that does not change any token's result, and extreme weights (-128, +-127) with +-127
// activations that would expose i16 saturation or a wrong unsigned offset.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>

#include "kernel_test_util.h"
#include "kernels/cpu/packed_q8_0.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"

namespace edgellm {
namespace {

using kernels::cpu::k_pack_rows;
using kernels::cpu::packed_gemm_fn;
constexpr ggml_type k_type = ggml_type::q8_0;

struct named_gemm {
    const char* name;
    packed_gemm_fn gemm;
};

// The gemms this CPU can run (an ISA table exists only when the CPU has the ISA).
std::vector<named_gemm> runnable_gemms() {
    std::vector<named_gemm> out;
    if (kernels::cpu::avx2_ops()) out.push_back({"avx2", kernels::cpu::packed_q8_0_gemm_avx2});
    if (kernels::cpu::avx512_ops()) out.push_back({"avx512", kernels::cpu::packed_q8_0_gemm_avx512});
    return out;
}

std::vector<uint8_t> pack_groups(const std::vector<uint8_t>& w, int64_t n_rows, int64_t n_cols) {
    const auto& l = kernels::cpu::packed_q8_0_layout();
    const size_t rb = row_size(k_type, n_cols), gb = l.group_bytes(n_cols);
    std::vector<uint8_t> p(size_t(n_rows / k_pack_rows) * gb);
    for (int64_t g = 0; g < n_rows / k_pack_rows; ++g)
        l.pack(w.data() + size_t(g) * k_pack_rows * rb, rb, n_cols, p.data() + size_t(g) * gb);
    return p;
}

std::vector<uint8_t> quantize_acts(const std::vector<float>& x, int64_t n_cols, int64_t n_tokens) {
    const size_t arb = size_t(n_cols / QK8_0) * sizeof(kernels::cpu::act_q8_32);
    std::vector<uint8_t> act(arb * size_t(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t)
        kernels::cpu::generic_ops().quantize_q8_32(x.data() + t * n_cols, act.data() + size_t(t) * arb, n_cols);
    return act;
}

// Runs `gemm` group by group over the first n_rows - n_rows % 8 rows, all tokens in one call, into
// a [n_tokens][n_rows] buffer (the tail rows stay untouched).
void run_groups(packed_gemm_fn gemm, const std::vector<uint8_t>& packed, int64_t n_rows, int64_t n_cols,
                const std::vector<uint8_t>& act, int64_t n_tokens, float* y) {
    const size_t arb = act.size() / size_t(n_tokens);
    const size_t gb = kernels::cpu::packed_q8_0_layout().group_bytes(n_cols);
    for (int64_t g = 0; g < n_rows / k_pack_rows; ++g)
        gemm(packed.data() + size_t(g) * gb, act.data(), arb, n_tokens, n_cols, y + g * k_pack_rows, size_t(n_rows));
}

TEST(PackedQ80, GroupIsEightBlocksAndRoundTripsExactly) {
    const auto& l = kernels::cpu::packed_q8_0_layout();
    EXPECT_EQ(l.type, k_type);
    EXPECT_EQ(l.act, kernels::cpu::act_format::q8_32);
    EXPECT_EQ(l.group_bytes(3 * QK8_0), 3 * k_pack_rows * sizeof(q8_0_block));
    for (int nb : {1, 3, 7}) {
        const int64_t n_cols = int64_t(nb) * QK8_0;
        // Quantized rows and random bytes: every bit of d and qs must survive.
        auto w = test::random_weights(k_type, 16, n_cols, uint32_t(nb));
        std::vector<uint8_t> noise(w.size());
        std::mt19937 rng(uint32_t(nb) + 100);
        for (auto& v : noise) v = uint8_t(rng());
        for (const auto* src : {&w, &noise}) {
            const auto p = pack_groups(*src, 16, n_cols);
            ASSERT_EQ(p.size(), src->size()) << "packing neither adds nor drops bytes";
            std::vector<uint8_t> back(src->size());
            const size_t rb = row_size(k_type, n_cols), gb = l.group_bytes(n_cols);
            for (int g = 0; g < 2; ++g) l.unpack(p.data() + size_t(g) * gb, n_cols, back.data() + size_t(g) * k_pack_rows * rb, rb);
            EXPECT_EQ(0, std::memcmp(back.data(), src->data(), src->size())) << nb << " blocks";
        }
    }
}

// (blocks per row, n_rows, n_tokens)
using shape = std::tuple<int, int, int>;
class PackedQ80Gemm : public ::testing::TestWithParam<shape> {};

TEST_P(PackedQ80Gemm, MatchesReferenceAndPlainDot) {
    const auto [nb, n_rows, n_tokens] = GetParam();
    const int64_t n_cols = int64_t(nb) * QK8_0;
    const uint32_t seed = uint32_t(nb * 131 + n_rows * 7 + n_tokens);
    const auto w = test::random_weights(k_type, n_rows, n_cols, seed);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), seed + 1);
    const auto packed = pack_groups(w, n_rows, n_cols);
    const auto act = quantize_acts(x, n_cols, n_tokens);
    const int64_t n_grouped = n_rows / k_pack_rows * k_pack_rows;

    std::vector<float> y_ref(size_t(n_rows * n_tokens));
    kernels::ref::mul_mat(k_type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
    std::vector<float> wrow(static_cast<size_t>(n_cols));
    double product_norm = 0.0, ref_norm = 0.0;
    for (int64_t r = 0; r < n_grouped; ++r) {
        kernels::ref::get_row(k_type, w.data(), n_cols, r, wrow.data());
        for (int64_t t = 0; t < n_tokens; ++t) {
            ref_norm += double(y_ref[size_t(t * n_rows + r)]) * y_ref[size_t(t * n_rows + r)];
            for (int64_t c = 0; c < n_cols; ++c) product_norm += double(wrow[c] * x[t * n_cols + c]) * (wrow[c] * x[t * n_cols + c]);
        }
    }
    std::vector<float> y_plain(y_ref.size());
    kernels::mul_mat(k_type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_plain.data(), 1);

    const auto gemms = runnable_gemms();
    if (gemms.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
    for (const auto& [name, gemm] : gemms) {
        SCOPED_TRACE(name);
        test::guarded_buffer y(y_ref.size()), y_one(y_ref.size());
        std::vector<float> untouched(y_ref.size());
        std::memcpy(untouched.data(), y.data(), untouched.size() * sizeof(float));
        run_groups(gemm, packed, n_rows, n_cols, act, n_tokens, y.data());
        ASSERT_TRUE(y.guards_intact()) << "write outside the output";
        // Token by token (every token in a tile of 1): the same result, bit for bit.
        const size_t arb = act.size() / size_t(n_tokens);
        for (int64_t t = 0; t < n_tokens; ++t) {
            const std::vector<uint8_t> one(act.begin() + std::ptrdiff_t(size_t(t) * arb), act.begin() + std::ptrdiff_t(size_t(t + 1) * arb));
            run_groups(gemm, packed, n_rows, n_cols, one, 1, y_one.data() + t * n_rows);
        }
        ASSERT_TRUE(y_one.guards_intact()) << "write outside the output (1 token)";
        double err = 0.0, err_plain = 0.0;
        for (int64_t t = 0; t < n_tokens; ++t) {
            for (int64_t r = 0; r < n_rows; ++r) {
                const size_t i = size_t(t * n_rows + r);
                if (r >= n_grouped) {
                    EXPECT_EQ(0, std::memcmp(&y.data()[i], &untouched[i], sizeof(float))) << "tail row written";
                    continue;
                }
                ASSERT_TRUE(std::isfinite(y.data()[i]));
                EXPECT_EQ(0, std::memcmp(&y.data()[i], &y_one.data()[i], sizeof(float))) << "token " << t << " row " << r << " depends on its tile";
                err += (double(y.data()[i]) - y_ref[i]) * (double(y.data()[i]) - y_ref[i]);
                err_plain += (double(y.data()[i]) - y_plain[i]) * (double(y.data()[i]) - y_plain[i]);
            }
        }
        EXPECT_LE(err / product_norm, test::tolerance(k_type)) << "error relative to the summands";
        if (n_grouped * n_tokens >= 32) {
            EXPECT_LE(err / ref_norm, test::tolerance(k_type)) << "NMSE";
        }
        // The plain dot sums the same integers with the same scales: only f32 rounding differs.
        EXPECT_LE(err_plain / ref_norm, 1e-10) << "differs from the plain Q8_0 dot";
    }
}

std::vector<shape> shapes() {
    std::vector<shape> out;
    for (int nb : {1, 3, 5, 64})
        for (auto [r, t] : {std::pair{8, 1}, {16, 2}, {24, 3}, {17, 5}, {40, 8}, {8, 9}, {33, 13}, {64, 1}, {16, 17}})
            out.emplace_back(nb, r, t);
    return out;
}

std::string shape_name(const ::testing::TestParamInfo<shape>& info) {
    const auto [nb, r, t] = info.param;
    // Appended piecewise: "b" + to_string(...) trips a false -Wrestrict in g++ 12.
    std::string name = "b";
    name += std::to_string(nb);
    name += "_r";
    name += std::to_string(r);
    name += "_t";
    name += std::to_string(t);
    return name;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackedQ80Gemm, ::testing::ValuesIn(shapes()), shape_name);

// A Q8_0 block with every weight q and d = 1.
q8_0_block uniform_block(int q) {
    q8_0_block b{};
    std::memset(b.qs, static_cast<uint8_t>(static_cast<int8_t>(q)), sizeof b.qs);
    b.d = fp32_to_fp16(1.0f);
    return b;
}

// Extremes: weights -128 (legal in a GGUF though ggml's quantizer does not make it), -127, 127, 0,
// and mixed-sign blocks, against activations +-1 which quantize to exactly +-127, so the exact
// answer is an integer the gemm must reproduce to f32 rounding. Two maddubs pairs summed in i16,
// or a sign trick that mishandles -128, would be off by thousands.
TEST(PackedQ80, ExtremeWeightsAndActivationsDoNotSaturate) {
    const auto gemms = runnable_gemms();
    if (gemms.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
    const int64_t nb = 3, n_cols = nb * QK8_0, n_rows = 16, n_tokens = 11;
    const int values[8] = {-128, 127, -127, 0, -128, 1, 127, -1};
    std::vector<uint8_t> w(size_t(n_rows) * nb * sizeof(q8_0_block));
    auto* blocks = reinterpret_cast<q8_0_block*>(w.data());
    std::mt19937 rng(7);
    for (int r = 0; r < n_rows; ++r)
        for (int b = 0; b < nb; ++b) {
            blocks[r * nb + b] = uniform_block(values[(r + b) % 8]);
            // The second group: every weight an extreme of either sign.
            if (r >= 8)
                for (auto& q : blocks[r * nb + b].qs) q = (rng() & 1) ? int8_t(-128) : int8_t(127);
        }
    // Token patterns: all +1, all -1, alternating, alternating in pairs, then random signs.
    std::vector<float> x(size_t(n_cols * n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t c = 0; c < n_cols; ++c) {
            const bool neg = t == 0 ? false : t == 1 ? true : t == 2 ? (c % 2 != 0) : t == 3 ? (c / 2 % 2 != 0) : (rng() & 1) != 0;
            x[size_t(t * n_cols + c)] = neg ? -1.0f : 1.0f;
        }
    std::vector<float> y_ref(size_t(n_rows * n_tokens));
    kernels::ref::mul_mat(k_type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
    // The f32 sums round at the scale of the summands (rows of +-4064 blocks cancel to 0):
    // allow a few ulps of sum |w * x|, far below the thousands a saturated i16 would lose.
    std::vector<double> abs_sum(y_ref.size());
    std::vector<float> wrow(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        kernels::ref::get_row(k_type, w.data(), n_cols, r, wrow.data());
        for (int64_t t = 0; t < n_tokens; ++t)
            for (int64_t c = 0; c < n_cols; ++c) abs_sum[size_t(t * n_rows + r)] += std::fabs(double(wrow[c]) * x[size_t(t * n_cols + c)]);
    }
    const auto packed = pack_groups(w, n_rows, n_cols);
    const auto act = quantize_acts(x, n_cols, n_tokens);
    for (const auto& [name, gemm] : gemms) {
        SCOPED_TRACE(name);
        test::guarded_buffer y(y_ref.size());
        run_groups(gemm, packed, n_rows, n_cols, act, n_tokens, y.data());
        ASSERT_TRUE(y.guards_intact());
        for (size_t i = 0; i < y_ref.size(); ++i)
            EXPECT_NEAR(y.data()[i], y_ref[i], 1e-6 * abs_sum[i]) << "row " << i % n_rows << " token " << i / n_rows;
    }
}

}  // namespace
}  // namespace edgellm
