// aarch64 only (built by tests/cross): on a CPU with dotprod the dispatcher must pick the NEON
// table and its packed Q4_0 gemm, so the generic kernel tests really exercise the NEON code; and
// the packed gemm must stay exact at the extremes of the weight and activation ranges.
#include <gtest/gtest.h>
#include <sys/auxv.h>

#include <cstring>

#include "kernel_test_util.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_q3_k.h"
#include "kernels/cpu/packed_q4_k.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_q8_0.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm {
namespace {

bool cpu_has_dotprod() {
    const unsigned long hw = getauxval(AT_HWCAP);
    return (hw & HWCAP_ASIMDDP) && (hw & HWCAP_ASIMDHP);
}

// One packed group of the 8 GGUF rows in w (the gemm tests call the NEON gemms directly).
std::vector<uint8_t> pack_group(const kernels::cpu::packed_layout& l, ggml_type t, const std::vector<uint8_t>& w,
                                int64_t n_cols) {
    std::vector<uint8_t> group(l.group_bytes(n_cols));
    l.pack(w.data(), row_size(t, n_cols), n_cols, group.data());
    return group;
}

// The q8_k activation rows of n_tokens rows of x, n_cols wide, as the generic quantizer makes them.
std::vector<q8_k_block> q8_k_rows(const std::vector<float>& x, int n_tokens, int64_t n_cols) {
    const int64_t n_blocks = n_cols / QK_K;
    std::vector<q8_k_block> act(size_t(n_blocks * n_tokens));
    for (int t = 0; t < n_tokens; ++t)
        kernels::cpu::generic_ops().quantize_q8_k(x.data() + t * n_cols, act.data() + t * n_blocks, n_cols);
    return act;
}

// A group's gemm over n_tokens tokens at once, into a guarded buffer (the guards must stay intact),
// and over each token alone, which must give the same bits: a token's result may not depend on the
// tile it lands in. Returns the all-at-once outputs (8 per token).
template <class Gemm, class Act>
std::vector<float> gemm_each_token_alike(Gemm gemm, const std::vector<uint8_t>& group, const std::vector<Act>& act,
                                         int64_t n_blocks, int n_tokens, int64_t n_cols) {
    const size_t act_stride = size_t(n_blocks) * sizeof(Act);
    test::guarded_buffer y(size_t(8 * n_tokens));
    gemm(group.data(), act.data(), act_stride, n_tokens, n_cols, y.data(), 8);
    EXPECT_TRUE(y.guards_intact());
    for (int t = 0; t < n_tokens; ++t) {
        float y1[8];
        gemm(group.data(), act.data() + t * n_blocks, act_stride, 1, n_cols, y1, 8);
        EXPECT_EQ(0, std::memcmp(y1, y.data() + t * 8, sizeof y1)) << "token " << t << " depends on its tile";
    }
    return std::vector<float>(y.data(), y.data() + 8 * n_tokens);
}

TEST(NeonDispatch, DotprodCpuUsesTheNeonTable) {
    if (!cpu_has_dotprod()) GTEST_SKIP() << "this CPU lacks dotprod/fp16: the generic table serves it";
    ASSERT_NE(kernels::cpu::neon_ops(), nullptr);
    EXPECT_EQ(kernels::active_impl(), kernels::impl::neon);
    EXPECT_STREQ(kernels::impl_name(kernels::active_impl()), "neon");
    bool listed = false;
    for (const auto& t : test::available_tables()) listed = listed || t.name == "neon";
    EXPECT_TRUE(listed) << "the kernel tests would not compare the NEON table with the reference";
    // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K, Q3_K, Q2_K, F16 and BF16 weights are repacked on
    // this CPU (the NEON packed gemms are the ones mul_mat_packed uses).
    EXPECT_GT(kernels::packed_size(ggml_type::q4_0, 16, 64), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q4_1, 16, 64), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q5_0, 16, 64), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q5_1, 16, 64), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q8_0, 16, 64), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q4_k, 16, QK_K), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q6_k, 16, QK_K), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q3_k, 16, QK_K), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::q2_k, 16, QK_K), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::f16, 16, 100), 0u);
    EXPECT_GT(kernels::packed_size(ggml_type::bf16, 16, 100), 0u);
    std::printf("active kernel implementation: %s\n", kernels::impl_name(kernels::active_impl()));
}

// Nibbles 0 and 15 (weights -8 and +7) against activations of +-127: the integer sums are at
// their largest, and the result must still equal the reference on the same quantized inputs.
TEST(NeonDispatch, PackedQ4_0IsExactAtTheRangeExtremes) {
    if (!cpu_has_dotprod()) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    const int64_t n_rows = 19, n_cols = 96, n_tokens = 6;
    std::vector<q4_0_block> w(size_t(n_rows * n_cols / 32));
    for (size_t i = 0; i < w.size(); ++i) {
        w[i].d = fp32_to_fp16(0.5f);
        std::memset(w[i].qs, (i % 3) == 0 ? 0x00 : (i % 3) == 1 ? 0xFF : 0x0F, sizeof w[i].qs);
    }
    // +-1 in every position quantizes to +-127 exactly (d = 1/127).
    std::vector<float> x(size_t(n_cols * n_tokens));
    for (size_t i = 0; i < x.size(); ++i) x[i] = ((i / 7) % 2) ? 1.0f : -1.0f;
    std::vector<float> y_ref(size_t(n_rows * n_tokens)), y(y_ref.size());
    kernels::ref::mul_mat(ggml_type::q4_0, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());

    const size_t bytes = kernels::packed_size(ggml_type::q4_0, n_rows, n_cols);
    ASSERT_GT(bytes, 0u);
    std::vector<uint8_t> packed(bytes);
    kernels::pack_weights(ggml_type::q4_0, w.data(), n_rows, n_cols, packed.data(), 1);
    kernels::mul_mat_packed(ggml_type::q4_0, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 2);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-4 * (1.0 + std::fabs(y_ref[i]))) << "output " << i;
}

// Exact ties: with max|x| = 127 the scale is 1, so x = k + 0.5 must round to even as the scalar
// nearbyint does (a round-half-away conversion would differ here and nowhere else).
TEST(NeonDispatch, QuantizersRoundTiesToEvenLikeGeneric) {
    const auto* neon = kernels::cpu::neon_ops();
    if (!neon) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    std::vector<float> x(QK_K);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 32 == 0) ? 127.0f : float(int(i % 17) - 8) + 0.5f;
    const auto& gen = kernels::cpu::generic_ops();
    std::vector<uint8_t> a(size_t(QK_K / 32) * sizeof(kernels::cpu::act_q8_32)), b(a.size());
    gen.quantize_q8_32(x.data(), a.data(), QK_K);
    neon->quantize_q8_32(x.data(), b.data(), QK_K);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "q8_32";
    std::vector<uint8_t> c(sizeof(q8_k_block)), d(c.size());
    gen.quantize_q8_k(x.data(), c.data(), QK_K);
    neon->quantize_q8_k(x.data(), d.data(), QK_K);
    EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size())) << "q8_k";
    EXPECT_EQ(reinterpret_cast<const kernels::cpu::act_q8_32*>(b.data())[0].qs[1], -6) << "-6.5 rounds to even";
}

// The Q8_0 gemm, called directly: one group against n_tokens activation rows, compared with the
// exact integer dot of the same quantized values (d_w * d_a * sum(w * a) in double).
// Random weights, then weights at -128 / 127 against activations of +-127.
TEST(NeonDispatch, PackedQ8_0GemmEqualsTheIntegerDot) {
    if (!kernels::cpu::neon_ops()) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    const auto& l = kernels::cpu::packed_q8_0_layout();
    for (const bool extreme : {false, true})
        for (const int n_blocks : {1, 3})
            for (const int n_tokens : {1, 2, 3, 5, 8, 9, 13}) {
                SCOPED_TRACE("extreme " + std::to_string(extreme) + " blocks " + std::to_string(n_blocks) + " tokens " +
                             std::to_string(n_tokens));
                const int64_t n_cols = 32 * n_blocks;
                auto w = test::random_weights(ggml_type::q8_0, 8, n_cols, uint32_t(n_blocks * 31 + n_tokens));
                auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(n_tokens + 7));
                auto* blocks = reinterpret_cast<q8_0_block*>(w.data());
                if (extreme) {
                    for (int64_t i = 0; i < 8 * n_blocks; ++i)
                        for (int j = 0; j < 32; ++j) blocks[i].qs[j] = int8_t((i + j) % 2 ? 127 : -128);
                    for (size_t i = 0; i < x.size(); ++i) x[i] = (i / 3) % 2 ? 1.0f : -1.0f;
                }
                std::vector<kernels::cpu::act_q8_32> act(size_t(n_blocks * n_tokens));
                for (int t = 0; t < n_tokens; ++t)
                    kernels::cpu::generic_ops().quantize_q8_32(x.data() + t * n_cols, act.data() + t * n_blocks, n_cols);
                const auto group = pack_group(l, ggml_type::q8_0, w, n_cols);
                test::guarded_buffer y(size_t(8 * n_tokens));
                kernels::cpu::packed_q8_0_gemm_neon(group.data(), act.data(), n_blocks * sizeof(kernels::cpu::act_q8_32),
                                                    n_tokens, n_cols, y.data(), 8);
                EXPECT_TRUE(y.guards_intact());
                for (int t = 0; t < n_tokens; ++t)
                    for (int r = 0; r < 8; ++r) {
                        double want = 0.0;
                        for (int b = 0; b < n_blocks; ++b) {
                            const q8_0_block& wb = blocks[r * n_blocks + b];
                            const auto& ab = act[size_t(t * n_blocks + b)];
                            int64_t dot = 0;
                            for (int j = 0; j < 32; ++j) dot += int64_t(wb.qs[j]) * ab.qs[j];
                            want += double(fp16_to_fp32(wb.d)) * ab.d * double(dot);
                        }
                        const float got = y.data()[t * 8 + r];
                        double scale = 0.0;  // sum of |terms|: the f32 rounding of the block sums follows it
                        for (int b = 0; b < n_blocks; ++b) {
                            const q8_0_block& wb = blocks[r * n_blocks + b];
                            const auto& ab = act[size_t(t * n_blocks + b)];
                            scale += std::fabs(double(fp16_to_fp32(wb.d)) * ab.d) * 32 * 128 * 127;
                        }
                        EXPECT_NEAR(got, want, 1e-6 * scale) << "token " << t << " row " << r;
                    }
            }
}

// The Q4_1 and Q5_1 gemms, called directly, against the exact integer form of the product: per
// block and token, d * d_a * dot(q, a) + m * d_a * sum(a), in double (q = nibble, Q5_1: plus 16 *
// its fifth bit). Random weights; then every nibble 0 or 15, every fifth bit 0 or 1 and mins of
// both signs against activations of +-127 (the largest integer sums). Token counts cover the
// 4-token tile and its remainders; each token's outputs must be bit-identical to a 1-token call.
class PackedMinLegacy : public ::testing::TestWithParam<ggml_type> {};

TEST_P(PackedMinLegacy, GemmEqualsTheIntegerDot) {
    if (!kernels::cpu::neon_ops()) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    const ggml_type type = GetParam();
    const bool q5 = type == ggml_type::q5_1;
    const auto& l = *kernels::cpu::packed_layout_for(type);
    const auto gemm = q5 ? kernels::cpu::packed_q5_1_gemm_neon : kernels::cpu::packed_q4_1_gemm_neon;
    ASSERT_EQ(kernels::cpu::neon_ops()->packed_gemm_for(type), gemm);
    const size_t bb = type_traits(type).type_size;
    for (const bool extreme : {false, true})
        for (const int n_blocks : {1, 3})
            for (const int n_tokens : {1, 2, 3, 4, 5, 7, 9}) {
                SCOPED_TRACE("extreme " + std::to_string(extreme) + " blocks " + std::to_string(n_blocks) + " tokens " +
                             std::to_string(n_tokens));
                const int64_t n_cols = 32 * n_blocks;
                auto w = test::random_weights(type, 8, n_cols, uint32_t(n_blocks * 41 + n_tokens + (q5 ? 5 : 0)));
                auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(n_tokens + 13));
                // Fields of block i: d at 0, m at 2, then (Q5_1) qh[4], then qs[16].
                const size_t qh_at = 4, qs_at = q5 ? 8 : 4;
                if (extreme) {
                    for (int64_t i = 0; i < 8 * n_blocks; ++i) {
                        uint8_t* blk = w.data() + size_t(i) * bb;
                        const uint16_t d = fp32_to_fp16(0.01f), m = fp32_to_fp16(i % 3 ? -0.05f : 0.03f);
                        std::memcpy(blk, &d, 2);
                        std::memcpy(blk + 2, &m, 2);
                        std::memset(blk + qs_at, (i % 2) ? 0xFF : (i % 4) ? 0x0F : 0x00, 16);
                        if (q5) std::memset(blk + qh_at, (i % 2) ? 0xFF : (i % 4) ? 0x00 : 0xF0, 4);
                    }
                    for (size_t i = 0; i < x.size(); ++i) x[i] = (i / 5) % 2 ? 1.0f : -1.0f;
                }
                std::vector<kernels::cpu::act_q8_32> act(size_t(n_blocks * n_tokens));
                for (int t = 0; t < n_tokens; ++t)
                    kernels::cpu::generic_ops().quantize_q8_32(x.data() + t * n_cols, act.data() + t * n_blocks, n_cols);
                const auto group = pack_group(l, type, w, n_cols);
                const auto y = gemm_each_token_alike(gemm, group, act, n_blocks, n_tokens, n_cols);
                for (int t = 0; t < n_tokens; ++t) {
                    for (int r = 0; r < 8; ++r) {
                        double want = 0.0, scale = 0.0;  // scale: sum of |terms|, which the f32 rounding follows
                        for (int b = 0; b < n_blocks; ++b) {
                            const uint8_t* blk = w.data() + size_t(r * n_blocks + b) * bb;
                            const auto& ab = act[size_t(t * n_blocks + b)];
                            uint16_t d16, m16;
                            std::memcpy(&d16, blk, 2);
                            std::memcpy(&m16, blk + 2, 2);
                            uint32_t qh = 0;
                            if (q5) std::memcpy(&qh, blk + qh_at, 4);
                            int64_t dot = 0, sum = 0;
                            for (int e = 0; e < 32; ++e) {
                                const uint8_t byte = blk[qs_at + e % 16];
                                const int q = (e < 16 ? byte & 0xF : byte >> 4) + (q5 ? int((qh >> e) & 1) << 4 : 0);
                                dot += int64_t(q) * ab.qs[e];
                                sum += ab.qs[e];
                            }
                            EXPECT_EQ(sum, ab.sum) << "the quantizer's block sum";
                            const double dd = double(fp16_to_fp32(d16)) * ab.d, dm = double(fp16_to_fp32(m16)) * ab.d;
                            want += dd * double(dot) + dm * double(sum);
                            scale += std::fabs(dd * double(dot)) + std::fabs(dm * double(sum));
                        }
                        EXPECT_NEAR(y.data()[t * 8 + r], want, 1e-6 * scale + 1e-30) << "token " << t << " row " << r;
                    }
                }
            }
}

INSTANTIATE_TEST_SUITE_P(Types, PackedMinLegacy, ::testing::Values(ggml_type::q4_1, ggml_type::q5_1),
                         [](const ::testing::TestParamInfo<ggml_type>& i) { return std::string(type_name(i.param)); });

// The same for the Q6_K gemm, against the exactly dequantized weights (the reference's get_row)
// times the quantized activations: random weights, then every 6-bit value 0 or 63 with scales
// of -128 / 127 against activations of +-127.
TEST(NeonDispatch, PackedQ6_KGemmEqualsTheDequantizedDot) {
    if (!kernels::cpu::neon_ops()) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    const auto& l = kernels::cpu::packed_q6_k_layout();
    for (const bool extreme : {false, true})
        for (const int n_blocks : {1, 2})
            for (const int n_tokens : {1, 2, 3, 5, 8, 9}) {
                SCOPED_TRACE("extreme " + std::to_string(extreme) + " blocks " + std::to_string(n_blocks) + " tokens " +
                             std::to_string(n_tokens));
                const int64_t n_cols = int64_t(QK_K) * n_blocks;
                auto w = test::random_weights(ggml_type::q6_k, 8, n_cols, uint32_t(n_blocks * 17 + n_tokens));
                auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(n_tokens + 3));
                if (extreme) {
                    auto* blocks = reinterpret_cast<q6_k_block*>(w.data());
                    for (int64_t i = 0; i < 8 * n_blocks; ++i) {
                        std::memset(blocks[i].ql, (i % 2) ? 0xFF : 0x00, sizeof blocks[i].ql);
                        std::memset(blocks[i].qh, (i % 2) ? 0xFF : 0x00, sizeof blocks[i].qh);
                        for (int s = 0; s < 16; ++s) blocks[i].scales[s] = int8_t(s % 2 ? 127 : -128);
                        blocks[i].d = fp32_to_fp16(0.001f);
                    }
                    for (size_t i = 0; i < x.size(); ++i) x[i] = (i / 5) % 2 ? 1.0f : -1.0f;
                }
                const auto act = q8_k_rows(x, n_tokens, n_cols);
                const auto group = pack_group(l, ggml_type::q6_k, w, n_cols);
                test::guarded_buffer y(size_t(8 * n_tokens));
                kernels::cpu::packed_q6_k_gemm_neon(group.data(), act.data(), n_blocks * sizeof(q8_k_block), n_tokens,
                                                    n_cols, y.data(), 8);
                EXPECT_TRUE(y.guards_intact());
                std::vector<float> wrow(static_cast<size_t>(n_cols));
                for (int r = 0; r < 8; ++r) {
                    kernels::ref::get_row(ggml_type::q6_k, w.data(), n_cols, r, wrow.data());
                    for (int t = 0; t < n_tokens; ++t) {
                        double want = 0.0, scale = 0.0;
                        for (int64_t c = 0; c < n_cols; ++c) {
                            const auto& ab = act[size_t(t * n_blocks + c / QK_K)];
                            const double term = double(wrow[size_t(c)]) * ab.d * ab.qs[c % QK_K];
                            want += term;
                            scale += std::fabs(term);
                        }
                        EXPECT_NEAR(y.data()[t * 8 + r], want, 1e-5 * scale + 1e-30) << "token " << t << " row " << r;
                    }
                }
            }
}

// The Q4_K gemm against the exact integer form of the product: per super-block and token,
// d * d_a * sum_s sc[s] * dot(q_s, a_s) - dmin * d_a * sum_s m[s] * sum(a_s), in double. Random
// weights, then nibbles of 0 / 15 with every 6-bit scale and min at 63 against activations of
// +-127. Each token's outputs must also be bit-identical to a 1-token call (tile independence).
TEST(NeonDispatch, PackedQ4_KGemmEqualsTheIntegerDot) {
    if (!kernels::cpu::neon_ops()) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    const auto& l = kernels::cpu::packed_q4_k_layout();
    for (const bool extreme : {false, true})
        for (const int n_blocks : {1, 2})
            for (const int n_tokens : {1, 2, 3, 5, 8, 9}) {
                SCOPED_TRACE("extreme " + std::to_string(extreme) + " blocks " + std::to_string(n_blocks) + " tokens " +
                             std::to_string(n_tokens));
                const int64_t n_cols = int64_t(QK_K) * n_blocks;
                auto w = test::random_weights(ggml_type::q4_k, 8, n_cols, uint32_t(n_blocks * 23 + n_tokens));
                auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(n_tokens + 11));
                auto* blocks = reinterpret_cast<q4_k_block*>(w.data());
                if (extreme) {
                    for (int64_t i = 0; i < 8 * n_blocks; ++i) {
                        std::memset(blocks[i].qs, (i % 2) ? 0xFF : 0x00, sizeof blocks[i].qs);
                        std::memset(blocks[i].scales, 0xFF, sizeof blocks[i].scales);
                        blocks[i].d = fp32_to_fp16(0.001f);
                        blocks[i].dmin = fp32_to_fp16(0.002f);
                    }
                    for (size_t i = 0; i < x.size(); ++i) x[i] = (i / 5) % 2 ? 1.0f : -1.0f;
                }
                const auto act = q8_k_rows(x, n_tokens, n_cols);
                const auto group = pack_group(l, ggml_type::q4_k, w, n_cols);
                const auto y = gemm_each_token_alike(kernels::cpu::packed_q4_k_gemm_neon, group, act, n_blocks, n_tokens, n_cols);
                for (int t = 0; t < n_tokens; ++t) {
                    for (int r = 0; r < 8; ++r) {
                        double want = 0.0, scale = 0.0;  // scale: sum of |terms|, which the f32 rounding follows
                        for (int b = 0; b < n_blocks; ++b) {
                            const q4_k_block& wb = blocks[r * n_blocks + b];
                            const q8_k_block& ab = act[size_t(t * n_blocks + b)];
                            int64_t si = 0, ms = 0;
                            for (int s = 0; s < 8; ++s) {
                                uint8_t sc, m;
                                k4_scale_min(s, wb.scales, &sc, &m);
                                int64_t dot = 0, sum = 0;
                                for (int e = 0; e < 32; ++e) {
                                    const uint8_t byte = wb.qs[32 * (s / 2) + e];
                                    dot += int64_t(s % 2 ? byte >> 4 : byte & 0xF) * ab.qs[32 * s + e];
                                    sum += ab.qs[32 * s + e];
                                }
                                si += sc * dot;
                                ms += m * sum;
                            }
                            const double dd = double(fp16_to_fp32(wb.d)) * ab.d, dm = double(fp16_to_fp32(wb.dmin)) * ab.d;
                            want += dd * double(si) - dm * double(ms);
                            scale += std::fabs(dd * double(si)) + std::fabs(dm * double(ms));
                        }
                        EXPECT_NEAR(y.data()[t * 8 + r], want, 1e-6 * scale + 1e-30) << "token " << t << " row " << r;
                    }
                }
            }
}

// The Q3_K and Q2_K gemms against the exact integer form of the product, per super-block and
// token: Q3_K d * d_a * sum_s sc[s] * dot(q2 + 4 * hbit - 4, a_s); Q2_K d * d_a * sum_s
// (sc[s] & 15) * dot(q, a_s) - dmin * d_a * sum_s (sc[s] >> 4) * sum(a_s), in double. Random
// weights; random 2-bit and high bits with every scale at an end of its range (Q3_K -32 / 31,
// Q2_K scales and mins 0 / 15) against +-127; and (Q3_K) every weight -4 with scales -32. Each
// token's outputs must also be bit-identical to a 1-token call (tile independence).
class PackedLowBitK : public ::testing::TestWithParam<ggml_type> {};

TEST_P(PackedLowBitK, GemmEqualsTheIntegerDot) {
    if (!kernels::cpu::neon_ops()) GTEST_SKIP() << "this CPU lacks dotprod/fp16";
    const ggml_type type = GetParam();
    const bool q2 = type == ggml_type::q2_k;
    const auto& l = q2 ? kernels::cpu::packed_q2_k_layout() : kernels::cpu::packed_q3_k_layout();
    const auto gemm = q2 ? kernels::cpu::packed_q2_k_gemm_neon : kernels::cpu::packed_q3_k_gemm_neon;
    const size_t bb = type_traits(type).type_size;
    for (const int mode : {0, 1, 2})
        for (const int n_blocks : {1, 3})
            for (const int n_tokens : {1, 2, 3, 5, 9}) {
                if (q2 && mode == 2) continue;
                SCOPED_TRACE("mode " + std::to_string(mode) + " blocks " + std::to_string(n_blocks) + " tokens " +
                             std::to_string(n_tokens));
                const int64_t n_cols = int64_t(QK_K) * n_blocks;
                auto w = test::random_weights(type, 8, n_cols, uint32_t(n_blocks * 29 + n_tokens + 100 * mode));
                auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(n_tokens + 17));
                if (mode > 0) {
                    uint32_t state = 12345;
                    for (int64_t i = 0; i < 8 * n_blocks; ++i) {
                        uint8_t* blk = w.data() + size_t(i) * bb;
                        const uint8_t scale_byte = (i % 3 == 0) ? 0x00 : 0xFF;
                        if (q2) {
                            auto& b = *reinterpret_cast<q2_k_block*>(blk);
                            for (auto& v : b.qs) v = uint8_t((state = state * 1103515245u + 12345u) >> 24);
                            std::memset(b.scales, scale_byte, sizeof b.scales);
                            b.d = fp32_to_fp16(0.001f);
                            b.dmin = fp32_to_fp16(0.002f);
                        } else {
                            auto& b = *reinterpret_cast<q3_k_block*>(blk);
                            for (auto& v : b.qs) v = mode == 2 ? 0 : uint8_t((state = state * 1103515245u + 12345u) >> 24);
                            for (auto& v : b.hmask) v = mode == 2 ? 0 : uint8_t((state = state * 1103515245u + 12345u) >> 24);
                            std::memset(b.scales, mode == 2 ? 0x00 : scale_byte, sizeof b.scales);
                            b.d = fp32_to_fp16(0.001f);
                        }
                    }
                    for (size_t i = 0; i < x.size(); ++i) x[i] = (i / 7) % 2 ? 1.0f : -1.0f;
                }
                const auto act = q8_k_rows(x, n_tokens, n_cols);
                const auto group = pack_group(l, type, w, n_cols);
                const auto y = gemm_each_token_alike(gemm, group, act, n_blocks, n_tokens, n_cols);
                for (int t = 0; t < n_tokens; ++t) {
                    for (int r = 0; r < 8; ++r) {
                        double want = 0.0, scale = 0.0;  // scale: sum of |terms|, which the f32 rounding follows
                        for (int b = 0; b < n_blocks; ++b) {
                            const uint8_t* blk = w.data() + size_t(r * n_blocks + b) * bb;
                            const q8_k_block& ab = act[size_t(t * n_blocks + b)];
                            int8_t sc3[16];
                            if (!q2) q3_k_scales(reinterpret_cast<const q3_k_block*>(blk)->scales, sc3);
                            int64_t si = 0, ms = 0;
                            for (int s = 0; s < 16; ++s) {
                                int64_t dot = 0, sum = 0;
                                for (int e = 0; e < 16; ++e) {
                                    const int n = 16 * s + e, h = n / 128, j = (n % 128) / 32, lo = n % 32;
                                    int v;
                                    if (q2) {
                                        v = (reinterpret_cast<const q2_k_block*>(blk)->qs[32 * h + lo] >> (2 * j)) & 3;
                                    } else {
                                        const auto* b3 = reinterpret_cast<const q3_k_block*>(blk);
                                        v = ((b3->qs[32 * h + lo] >> (2 * j)) & 3) + 4 * ((b3->hmask[lo] >> (4 * h + j)) & 1) - 4;
                                    }
                                    dot += int64_t(v) * ab.qs[n];
                                    sum += ab.qs[n];
                                }
                                if (q2) {
                                    const uint8_t sb = reinterpret_cast<const q2_k_block*>(blk)->scales[s];
                                    si += (sb & 15) * dot;
                                    ms += (sb >> 4) * sum;
                                } else {
                                    si += sc3[s] * dot;
                                }
                            }
                            fp16_bits d, dmin = 0;
                            if (q2) {
                                d = reinterpret_cast<const q2_k_block*>(blk)->d;
                                dmin = reinterpret_cast<const q2_k_block*>(blk)->dmin;
                            } else {
                                d = reinterpret_cast<const q3_k_block*>(blk)->d;
                            }
                            const double dd = double(fp16_to_fp32(d)) * ab.d, dm = double(fp16_to_fp32(dmin)) * ab.d;
                            want += dd * double(si) - dm * double(ms);
                            scale += std::fabs(dd * double(si)) + std::fabs(dm * double(ms));
                        }
                        EXPECT_NEAR(y.data()[t * 8 + r], want, 1e-6 * scale + 1e-30) << "token " << t << " row " << r;
                    }
                }
            }
}

INSTANTIATE_TEST_SUITE_P(Types, PackedLowBitK, ::testing::Values(ggml_type::q3_k, ggml_type::q2_k),
                         [](const ::testing::TestParamInfo<ggml_type>& i) { return std::string(type_name(i.param)); });

// Run only on a core without dotprod (the cross script runs it alone under -cpu cortex-a72, as a
// Raspberry Pi 4): the dispatcher must fall back to the generic table, which has no packed gemms,
// so nothing is repacked.
TEST(NoDotprod, CpuWithoutDotprodUsesTheGenericTable) {
    ASSERT_FALSE(cpu_has_dotprod()) << "this check is for a CPU without dotprod/fp16 (qemu -cpu cortex-a72)";
    EXPECT_EQ(kernels::cpu::neon_ops(), nullptr);
    EXPECT_EQ(kernels::active_impl(), kernels::impl::generic);
    for (const ggml_type t : {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0,
                             ggml_type::q4_k, ggml_type::q6_k, ggml_type::q3_k, ggml_type::q2_k, ggml_type::f16,
                             ggml_type::bf16})
        EXPECT_EQ(kernels::packed_size(t, 16, QK_K), 0u) << type_name(t);
    std::printf("active kernel implementation: %s\n", kernels::impl_name(kernels::active_impl()));
}

}  // namespace
}  // namespace edgellm
