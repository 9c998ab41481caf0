// Q6_K x8 packed layout: byte-exact round trip, and the AVX2 / AVX-512 VNNI gemms (called
// directly, per group) against the scalar reference product on odd shapes, plus extreme weights
// and +-127 activations that would expose i16 saturation or a wrong -32 offset.
#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

#include "kernel_test_util.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"

namespace edgellm {
namespace {

using kernels::cpu::k_pack_rows;
using kernels::cpu::packed_gemm_fn;
constexpr ggml_type k_type = ggml_type::q6_k;

struct named_gemm {
    const char* name;
    packed_gemm_fn gemm;
};

// The gemms this CPU can run (an ISA table exists only when the CPU has the ISA).
std::vector<named_gemm> runnable_gemms() {
    std::vector<named_gemm> out;
    if (kernels::cpu::avx2_ops()) out.push_back({"avx2", kernels::cpu::packed_q6_k_gemm_avx2});
    if (kernels::cpu::avx512_ops()) out.push_back({"avx512", kernels::cpu::packed_q6_k_gemm_avx512});
    return out;
}

std::vector<uint8_t> pack_groups(const std::vector<uint8_t>& w, int64_t n_rows, int64_t n_cols) {
    const auto& l = kernels::cpu::packed_q6_k_layout();
    const size_t rb = row_size(k_type, n_cols), gb = l.group_bytes(n_cols);
    std::vector<uint8_t> p(size_t(n_rows / k_pack_rows) * gb);
    for (int64_t g = 0; g < n_rows / k_pack_rows; ++g) l.pack(w.data() + size_t(g) * k_pack_rows * rb, rb, n_cols, p.data() + size_t(g) * gb);
    return p;
}

// Runs `gemm` group by group over the first n_rows - n_rows % 8 rows, with activations made by the
// portable quantizer, into a guarded [n_tokens][n_rows] buffer (the tail rows stay untouched).
void run_groups(packed_gemm_fn gemm, const std::vector<uint8_t>& packed, int64_t n_rows, int64_t n_cols,
                const std::vector<float>& x, int64_t n_tokens, test::guarded_buffer& y) {
    const auto& l = kernels::cpu::packed_q6_k_layout();
    const size_t arb = size_t(n_cols / QK_K) * sizeof(q8_k_block);
    std::vector<uint8_t> act(arb * size_t(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t) kernels::cpu::generic_ops().quantize_q8_k(x.data() + t * n_cols, act.data() + size_t(t) * arb, n_cols);
    const size_t gb = l.group_bytes(n_cols);
    for (int64_t g = 0; g < n_rows / k_pack_rows; ++g)
        gemm(packed.data() + size_t(g) * gb, act.data(), arb, n_tokens, n_cols, y.data() + g * k_pack_rows, size_t(n_rows));
}

TEST(PackedQ6K, GroupIsEightBlocksAndRoundTripsExactly) {
    const auto& l = kernels::cpu::packed_q6_k_layout();
    EXPECT_EQ(l.type, k_type);
    EXPECT_EQ(l.act, kernels::cpu::act_format::q8_k);
    EXPECT_EQ(l.group_bytes(3 * QK_K), 3 * k_pack_rows * sizeof(q6_k_block));
    for (int nb : {1, 3, 7}) {
        const int64_t n_cols = int64_t(nb) * QK_K;
        // Quantized rows and random bytes: every bit of ql, qh, scales and d must survive.
        auto w = test::random_weights(k_type, 16, n_cols, uint32_t(nb));
        std::vector<uint8_t> noise(w.size());
        std::mt19937 rng(uint32_t(nb) + 100);
        for (auto& v : noise) v = uint8_t(rng());
        for (const auto* src : {&w, &noise}) {
            const auto p = pack_groups(*src, 16, n_cols);
            std::vector<uint8_t> back(src->size());
            const size_t rb = row_size(k_type, n_cols), gb = l.group_bytes(n_cols);
            for (int g = 0; g < 2; ++g) l.unpack(p.data() + size_t(g) * gb, n_cols, back.data() + size_t(g) * k_pack_rows * rb, rb);
            EXPECT_EQ(0, std::memcmp(back.data(), src->data(), src->size())) << nb << " blocks";
        }
    }
}

// (blocks per row, n_rows, n_tokens)
using shape = std::tuple<int, int, int>;
class PackedQ6KGemm : public ::testing::TestWithParam<shape> {};

TEST_P(PackedQ6KGemm, MatchesReferenceAndPlainDot) {
    const auto [nb, n_rows, n_tokens] = GetParam();
    const int64_t n_cols = int64_t(nb) * QK_K;
    const uint32_t seed = uint32_t(nb * 131 + n_rows * 7 + n_tokens);
    const auto w = test::random_weights(k_type, n_rows, n_cols, seed);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), seed + 1);
    const auto packed = pack_groups(w, n_rows, n_cols);
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
        test::guarded_buffer y(y_ref.size());
        std::vector<float> untouched(y_ref.size());
        std::memcpy(untouched.data(), y.data(), untouched.size() * sizeof(float));
        run_groups(gemm, packed, n_rows, n_cols, x, n_tokens, y);
        ASSERT_TRUE(y.guards_intact()) << "write outside the output";
        double err = 0.0, err_plain = 0.0;
        for (int64_t t = 0; t < n_tokens; ++t) {
            for (int64_t r = 0; r < n_rows; ++r) {
                const size_t i = size_t(t * n_rows + r);
                if (r >= n_grouped) {
                    EXPECT_EQ(0, std::memcmp(&y.data()[i], &untouched[i], sizeof(float))) << "tail row written";
                    continue;
                }
                ASSERT_TRUE(std::isfinite(y.data()[i]));
                err += (double(y.data()[i]) - y_ref[i]) * (double(y.data()[i]) - y_ref[i]);
                err_plain += (double(y.data()[i]) - y_plain[i]) * (double(y.data()[i]) - y_plain[i]);
            }
        }
        EXPECT_LE(err / product_norm, test::tolerance(k_type)) << "error relative to the summands";
        if (n_grouped * n_tokens >= 32) {
            EXPECT_LE(err / ref_norm, test::tolerance(k_type)) << "NMSE";
        }
        // The plain AVX2 dot sums the same integers with the same scales: only f32 rounding differs.
        EXPECT_LE(err_plain / ref_norm, 1e-10) << "differs from the plain Q6_K dot";
    }
}

std::vector<shape> shapes() {
    std::vector<shape> out;
    for (int nb : {1, 3, 5})
        for (auto [r, t] : {std::pair{8, 1}, {16, 2}, {24, 3}, {17, 5}, {40, 8}, {8, 9}, {33, 13}, {64, 1}})
            out.emplace_back(nb, r, t);
    return out;
}

std::string shape_name(const ::testing::TestParamInfo<shape>& info) {
    const auto [nb, r, t] = info.param;
    std::string name = "b";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "lit" + string
    name += std::to_string(nb);
    name += "_r";
    name += std::to_string(r);
    name += "_t";
    name += std::to_string(t);
    return name;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackedQ6KGemm, ::testing::ValuesIn(shapes()), shape_name);

// A token's result must not depend on the token tile it is computed in (decode vs prefill give
// the same logits): 13 tokens at once (tiles 8+5 / 4+4+4+1) equal 13 single-token calls bit for bit.
TEST(PackedQ6K, TokenResultIndependentOfTile) {
    const auto gemms = runnable_gemms();
    if (gemms.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
    const int64_t n_rows = 16, n_cols = 2 * QK_K, n_tokens = 13;
    const auto w = test::random_weights(k_type, n_rows, n_cols, 77);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), 78);
    const auto packed = pack_groups(w, n_rows, n_cols);
    for (const auto& [name, gemm] : gemms) {
        SCOPED_TRACE(name);
        test::guarded_buffer all(size_t(n_rows * n_tokens));
        run_groups(gemm, packed, n_rows, n_cols, x, n_tokens, all);
        for (int64_t t = 0; t < n_tokens; ++t) {
            const std::vector<float> xt(x.begin() + t * n_cols, x.begin() + (t + 1) * n_cols);
            test::guarded_buffer one{static_cast<size_t>(n_rows)};
            run_groups(gemm, packed, n_rows, n_cols, xt, 1, one);
            EXPECT_EQ(0, std::memcmp(one.data(), all.data() + t * n_rows, size_t(n_rows) * sizeof(float))) << "token " << t;
        }
    }
}

// A Q6_K block with every stored value q, every scale sc and d = 1.
q6_k_block uniform_block(int q, int sc) {
    q6_k_block b{};
    std::memset(b.ql, (q & 0xF) * 0x11, sizeof b.ql);
    std::memset(b.qh, (q >> 4) * 0x55, sizeof b.qh);
    std::memset(b.scales, sc, sizeof b.scales);
    b.d = fp32_to_fp16(1.0f);
    return b;
}

// Extremes: q in {0, 63} with scales -128 / 127, activations +-1 which quantize to exactly +-127,
// so the exact answer is an integer the gemm must reproduce to f32 rounding. Summing more than
// two maddubs pairs in i16, or an i16 overflow in the offset, would be off by thousands.
TEST(PackedQ6K, ExtremeWeightsAndActivationsDoNotSaturate) {
    const auto gemms = runnable_gemms();
    if (gemms.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512 VNNI";
    const int64_t nb = 3, n_cols = nb * QK_K, n_rows = 8, n_tokens = 9;
    const int cases[8][2] = {{63, 127}, {63, -128}, {0, -128}, {0, 127}, {32, -128}, {31, 127}, {62, -1}, {1, 1}};
    std::vector<uint8_t> w(size_t(n_rows) * nb * sizeof(q6_k_block));
    auto* blocks = reinterpret_cast<q6_k_block*>(w.data());
    for (int r = 0; r < n_rows; ++r)
        for (int b = 0; b < nb; ++b) blocks[r * nb + b] = uniform_block(cases[(r + b) % 8][0], cases[(r + b) % 8][1]);
    // Token patterns: all +1, all -1, alternating, alternating in pairs, random signs.
    std::vector<float> x(size_t(n_cols * n_tokens));
    std::mt19937 rng(5);
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t c = 0; c < n_cols; ++c) {
            const bool neg = t == 0 ? false : t == 1 ? true : t == 2 ? (c % 2) : t == 3 ? (c / 2 % 2) : (rng() & 1);
            x[size_t(t * n_cols + c)] = neg ? -1.0f : 1.0f;
        }
    std::vector<float> y_ref(size_t(n_rows * n_tokens));
    kernels::ref::mul_mat(k_type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
    const auto packed = pack_groups(w, n_rows, n_cols);
    for (const auto& [name, gemm] : gemms) {
        SCOPED_TRACE(name);
        test::guarded_buffer y(y_ref.size());
        run_groups(gemm, packed, n_rows, n_cols, x, n_tokens, y);
        ASSERT_TRUE(y.guards_intact());
        for (size_t i = 0; i < y_ref.size(); ++i)
            EXPECT_NEAR(y.data()[i], y_ref[i], 1e-5 * (1.0 + std::fabs(y_ref[i]))) << "row " << i % n_rows << " token " << i / n_rows;
    }
}

}  // namespace
}  // namespace edgellm
