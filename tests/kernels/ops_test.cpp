// Element-wise ops, RoPE and attention: every op table and the public dispatcher against the
// scalar reference on odd sizes, with guard bytes and NaN/Inf checks.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm {
namespace {

using test::nmse;

// The fast ops compute in f32 (the reference in f64) and use a polynomial exp with ~2e-7
// relative error, so outputs differ by a few f32 ulps: NMSE ~1e-13. 1e-10 leaves room for
// accumulation-order effects on long rows while still catching any real mistake (a wrong
// index gives NMSE ~1).
constexpr double k_op_tol = 1e-10;

const int64_t k_sizes[] = {1, 3, 17, 33, 127, 129, 1023, 4096};

class ElementOps : public ::testing::TestWithParam<int64_t> {};

TEST_P(ElementOps, RmsNormMatchesReference) {
    const int64_t n = GetParam(), n_tokens = 3;
    const auto x = test::random_floats(size_t(n * n_tokens), 1, 3.0f);
    const auto wgt = test::random_floats(size_t(n), 2);
    std::vector<float> ref(x.size());
    kernels::ref::rms_norm(x.data(), wgt.data(), ref.data(), n, n_tokens, 1e-5f);
    for (const auto& t : test::available_tables()) {
        if (!t.ops->rms_norm) continue;
        SCOPED_TRACE(t.name);
        test::guarded_buffer y(x.size());
        t.ops->rms_norm(x.data(), wgt.data(), y.data(), n, n_tokens, 1e-5f);
        EXPECT_TRUE(y.guards_intact());
        EXPECT_TRUE(test::all_finite(y.data(), y.size()));
        EXPECT_LE(nmse(y.data(), ref.data(), ref.size()), k_op_tol);
    }
}

TEST_P(ElementOps, SoftmaxMatchesReferenceAndSumsToOne) {
    const int64_t n = GetParam();
    auto x = test::random_floats(size_t(n), 3, 10.0f);
    x[0] = 80.0f;  // large logits must not overflow (the max is subtracted first)
    auto ref = x;
    kernels::ref::softmax(ref.data(), n);
    for (const auto& t : test::available_tables()) {
        if (!t.ops->softmax) continue;
        SCOPED_TRACE(t.name);
        test::guarded_buffer y(x.size());
        std::copy(x.begin(), x.end(), y.data());
        t.ops->softmax(y.data(), n);
        EXPECT_TRUE(y.guards_intact());
        ASSERT_TRUE(test::all_finite(y.data(), y.size()));
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += y.data()[i];
        EXPECT_NEAR(sum, 1.0, 1e-5);
        EXPECT_LE(nmse(y.data(), ref.data(), ref.size()), k_op_tol);
    }
}

TEST_P(ElementOps, SwigluAndAddMatchReference) {
    const int64_t n = GetParam();
    auto gate = test::random_floats(size_t(n), 4, 4.0f);
    // exp(100) overflows f32: silu must still be ~0, not NaN. Kept out of size-1 rows, where
    // the NMSE of a single ~0 output would be meaningless.
    if (n > 1) gate[0] = -100.0f;
    const auto up = test::random_floats(size_t(n), 5);
    std::vector<float> ref(static_cast<size_t>(n));
    kernels::ref::swiglu(gate.data(), up.data(), ref.data(), n);
    std::vector<float> ref_add = up;
    kernels::ref::add(ref_add.data(), gate.data(), n);
    for (const auto& t : test::available_tables()) {
        SCOPED_TRACE(t.name);
        if (t.ops->swiglu) {
            test::guarded_buffer y(static_cast<size_t>(n));
            t.ops->swiglu(gate.data(), up.data(), y.data(), n);
            EXPECT_TRUE(y.guards_intact());
            ASSERT_TRUE(test::all_finite(y.data(), y.size()));
            EXPECT_LE(nmse(y.data(), ref.data(), ref.size()), k_op_tol);
        }
        if (t.ops->add) {
            test::guarded_buffer y(static_cast<size_t>(n));
            std::copy(up.begin(), up.end(), y.data());
            t.ops->add(y.data(), gate.data(), n);
            EXPECT_TRUE(y.guards_intact());
            EXPECT_EQ(0, std::memcmp(y.data(), ref_add.data(), ref_add.size() * sizeof(float)));
        }
    }
}

// GeGLU (tanh GELU) and the logit soft cap: every table that has them, and the dispatcher, against
// the reference; gates far out in both tails must give 0 and g * up, not NaN.
TEST_P(ElementOps, GegluAndSoftcapMatchReference) {
    const int64_t n = GetParam();
    auto gate = test::random_floats(size_t(n), 6, 4.0f);
    if (n > 2) gate[0] = -100.0f, gate[1] = 100.0f;
    const auto up = test::random_floats(size_t(n), 7);
    std::vector<float> ref(static_cast<size_t>(n));
    kernels::ref::geglu(gate.data(), up.data(), ref.data(), n);
    const auto logits = test::random_floats(size_t(n), 8, 80.0f);
    auto ref_cap = logits;
    kernels::ref::softcap(ref_cap.data(), n, 30.0f);
    auto check_geglu = [&](const char* name, void (*fn)(const float*, const float*, float*, int64_t)) {
        SCOPED_TRACE(name);
        test::guarded_buffer y(static_cast<size_t>(n));
        fn(gate.data(), up.data(), y.data(), n);
        EXPECT_TRUE(y.guards_intact());
        ASSERT_TRUE(test::all_finite(y.data(), y.size()));
        EXPECT_LE(nmse(y.data(), ref.data(), ref.size()), k_op_tol);
    };
    auto check_cap = [&](const char* name, void (*fn)(float*, int64_t, float)) {
        SCOPED_TRACE(name);
        test::guarded_buffer y(static_cast<size_t>(n));
        std::copy(logits.begin(), logits.end(), y.data());
        fn(y.data(), n, 30.0f);
        EXPECT_TRUE(y.guards_intact());
        ASSERT_TRUE(test::all_finite(y.data(), y.size()));
        for (int64_t i = 0; i < n; ++i) EXPECT_LE(std::abs(y.data()[i]), 30.0f);
        EXPECT_LE(nmse(y.data(), ref_cap.data(), ref_cap.size()), k_op_tol);
    };
    for (const auto& t : test::available_tables()) {
        if (t.ops->geglu) check_geglu(t.name.c_str(), t.ops->geglu);
        if (t.ops->softcap) check_cap(t.name.c_str(), t.ops->softcap);
    }
    ASSERT_NE(kernels::cpu::generic_ops().geglu, nullptr);
    ASSERT_NE(kernels::cpu::generic_ops().softcap, nullptr);
    check_geglu("dispatcher", kernels::geglu);
    check_cap("dispatcher", kernels::softcap);
    if (n > 2) {
        EXPECT_EQ(ref[0], 0.0f);  // gelu(-100) is 0 (to f32)
        EXPECT_NEAR(ref[1], 100.0f * up[1], 1e-4f * std::abs(100.0f * up[1]));
    }
}

TEST(GegluRef, KnownValues) {
    // gelu_tanh(1) = 0.841191990, gelu_tanh(-1) = -0.158808009, gelu(0) = 0.
    const std::vector<float> g{1.0f, -1.0f, 0.0f}, up{1.0f, 2.0f, 5.0f};
    std::vector<float> y(3);
    kernels::ref::geglu(g.data(), up.data(), y.data(), 3);
    EXPECT_NEAR(y[0], 0.841191990f, 1e-6f);
    EXPECT_NEAR(y[1], 2.0f * -0.158808009f, 1e-6f);
    EXPECT_EQ(y[2], 0.0f);
    std::vector<float> x{1.0f};
    EXPECT_THROW(kernels::softcap(x.data(), 1, 0.0f), error);
}

INSTANTIATE_TEST_SUITE_P(Sizes, ElementOps, ::testing::ValuesIn(k_sizes));

// (mode, head_dim, n_rot, pos, with rope_freqs factors)
using rope_param = std::tuple<kernels::rope_mode, int, int, int, bool>;
class Rope : public ::testing::TestWithParam<rope_param> {};

TEST_P(Rope, MatchesReference) {
    const auto [mode, head_dim, n_rot, pos, with_factors] = GetParam();
    const int64_t n_heads = 5;
    const auto x = test::random_floats(size_t(n_heads * head_dim), 7);
    std::vector<float> factors(static_cast<size_t>(n_rot / 2));
    for (size_t i = 0; i < factors.size(); ++i) factors[i] = 1.0f + float(i % 4);
    const float* ff = with_factors ? factors.data() : nullptr;
    auto ref = x;
    kernels::ref::rope(ref.data(), n_heads, head_dim, n_rot, pos, 10000.0f, 0.5f, ff, mode);
    auto y = x;
    kernels::cpu::rope(y.data(), n_heads, head_dim, n_rot, pos, 10000.0f, 0.5f, ff, mode);
    EXPECT_TRUE(test::all_finite(y.data(), y.size()));
    EXPECT_LE(nmse(y.data(), ref.data(), ref.size()), k_op_tol);
    // Dimensions past n_rot pass through untouched.
    for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t d = n_rot; d < head_dim; ++d) EXPECT_EQ(y[h * head_dim + d], x[h * head_dim + d]);
    // The table form the forward pass uses (one angle table per position, shared by Q, K and
    // layers) gives exactly rope()'s bits.
    std::vector<float> cs(static_cast<size_t>(n_rot));
    kernels::rope_angles(n_rot, pos, 10000.0f, 0.5f, ff, cs.data());
    auto z = x;
    kernels::rope_rotate(z.data(), n_heads, head_dim, n_rot, cs.data(), mode);
    EXPECT_EQ(0, std::memcmp(z.data(), y.data(), y.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Modes, Rope,
                         ::testing::Values(rope_param{kernels::rope_mode::normal, 64, 64, 0, false},
                                           rope_param{kernels::rope_mode::normal, 64, 64, 1234, false},
                                           rope_param{kernels::rope_mode::neox, 128, 128, 77, true},
                                           rope_param{kernels::rope_mode::neox, 80, 32, 4095, false},
                                           rope_param{kernels::rope_mode::normal, 96, 48, 3, true}));

TEST(RopeRef, PositionZeroIsIdentityAndRotationKeepsNorm) {
    auto x = test::random_floats(64, 8);
    auto y = x;
    kernels::ref::rope(y.data(), 1, 64, 64, 0, 10000.0f, 1.0f, nullptr, kernels::rope_mode::normal);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i]);
    kernels::ref::rope(y.data(), 1, 64, 64, 99, 10000.0f, 1.0f, nullptr, kernels::rope_mode::neox);
    double n0 = 0, n1 = 0;
    for (size_t i = 0; i < x.size(); ++i) n0 += double(x[i]) * x[i], n1 += double(y[i]) * y[i];
    EXPECT_NEAR(n0, n1, 1e-4 * n0);
}

TEST(RopeRef, RejectsOddOrOversizedNRot) {
    std::vector<float> x(64);
    EXPECT_THROW(kernels::rope(x.data(), 1, 64, 65, 0, 1e4f, 1.0f, nullptr, kernels::rope_mode::normal), error);
    EXPECT_THROW(kernels::rope(x.data(), 1, 64, 63, 0, 1e4f, 1.0f, nullptr, kernels::rope_mode::normal), error);
}

// (kv type, n_kv, n_head, n_head_kv, head_dim)
using attn_param = std::tuple<ggml_type, int, int, int, int>;
class Attention : public ::testing::TestWithParam<attn_param> {};

TEST_P(Attention, MatchesReference) {
    const auto [kv_type, n_kv, n_head, n_head_kv, head_dim] = GetParam();
    const auto q = test::random_floats(size_t(n_head * head_dim), 9);
    const auto kf = test::random_floats(size_t(n_kv * n_head_kv * head_dim), 10);
    const auto vf = test::random_floats(size_t(n_kv * n_head_kv * head_dim), 11);
    std::vector<uint16_t> kh(kf.size()), vh(vf.size());
    for (size_t i = 0; i < kf.size(); ++i) kh[i] = fp32_to_fp16(kf[i]), vh[i] = fp32_to_fp16(vf[i]);
    const void* k = kv_type == ggml_type::f16 ? static_cast<const void*>(kh.data()) : kf.data();
    const void* v = kv_type == ggml_type::f16 ? static_cast<const void*>(vh.data()) : vf.data();
    const float scale = 1.0f / std::sqrt(float(head_dim));
    const auto view = kernels::kv_view::contiguous(k, v, kv_type, int64_t{n_head_kv} * head_dim);
    std::vector<float> ref(q.size()), scratch(static_cast<size_t>(n_kv));
    kernels::ref::attention(q.data(), view, n_kv, n_head, n_head_kv, head_dim, scale, ref.data(), scratch.data());
    ASSERT_TRUE(test::all_finite(ref.data(), ref.size()));
    for (const auto& t : test::available_tables()) {
        if (!t.ops->attention) continue;
        SCOPED_TRACE(t.name);
        test::guarded_buffer out(q.size()), scr(static_cast<size_t>(n_kv));
        t.ops->attention(q.data(), view, n_kv, n_head, n_head_kv, head_dim, scale, out.data(), scr.data());
        EXPECT_TRUE(out.guards_intact());
        EXPECT_TRUE(scr.guards_intact()) << "scratch used beyond n_kv floats";
        ASSERT_TRUE(test::all_finite(out.data(), out.size()));
        EXPECT_LE(nmse(out.data(), ref.data(), ref.size()), k_op_tol);
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Attention,
                         ::testing::Values(attn_param{ggml_type::f16, 1, 4, 4, 64},
                                           attn_param{ggml_type::f16, 7, 32, 4, 64},
                                           attn_param{ggml_type::f32, 33, 8, 2, 20},
                                           attn_param{ggml_type::f16, 129, 6, 3, 17},
                                           attn_param{ggml_type::f32, 1023, 4, 1, 128},
                                           attn_param{ggml_type::f16, 3, 9, 3, 8}));

// The same rows scattered over shuffled blocks of a pool (a paged KV cache) give bit-identical
// results to the contiguous layout, for the reference and every op table.
TEST_P(Attention, PagedLayoutEqualsContiguous) {
    const auto [kv_type, n_kv, n_head, n_head_kv, head_dim] = GetParam();
    const int64_t row_elems = int64_t{n_head_kv} * head_dim;
    const size_t row_bytes = row_size(kv_type, row_elems);
    const auto q = test::random_floats(size_t(n_head * head_dim), 15);
    const auto kf = test::random_floats(size_t(n_kv * row_elems), 16);
    const auto vf = test::random_floats(size_t(n_kv * row_elems), 17);
    std::vector<uint8_t> kc(n_kv * row_bytes), vc(n_kv * row_bytes);
    for (size_t i = 0; i < kf.size(); ++i) {
        if (kv_type == ggml_type::f16) {
            reinterpret_cast<uint16_t*>(kc.data())[i] = fp32_to_fp16(kf[i]);
            reinterpret_cast<uint16_t*>(vc.data())[i] = fp32_to_fp16(vf[i]);
        } else {
            reinterpret_cast<float*>(kc.data())[i] = kf[i];
            reinterpret_cast<float*>(vc.data())[i] = vf[i];
        }
    }
    // Blocks of 4 rows; the sequence's blocks sit in reverse order in a pool with spare blocks,
    // K and V interleaved per block as in model::kv_cache.
    const int shift = 2;
    const int64_t rows_per_block = int64_t{1} << shift;
    const int64_t n_blocks = (n_kv + rows_per_block - 1) / rows_per_block;
    const int64_t n_pool = n_blocks + 3;
    const size_t block_bytes = size_t(rows_per_block) * row_bytes;
    std::vector<uint8_t> pool(size_t(n_pool) * 2 * block_bytes, 0xAB);
    std::vector<int32_t> table(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) table[size_t(b)] = int32_t(n_pool - 1 - b);
    for (int64_t j = 0; j < n_kv; ++j) {
        uint8_t* blk = pool.data() + size_t(table[size_t(j >> shift)]) * 2 * block_bytes;
        std::memcpy(blk + size_t(j & (rows_per_block - 1)) * row_bytes, kc.data() + size_t(j) * row_bytes, row_bytes);
        std::memcpy(blk + block_bytes + size_t(j & (rows_per_block - 1)) * row_bytes, vc.data() + size_t(j) * row_bytes,
                    row_bytes);
    }
    kernels::kv_view paged;
    paged.k = pool.data();
    paged.v = pool.data() + block_bytes;
    paged.type = kv_type;
    paged.row_bytes = row_bytes;
    paged.blocks = table.data();
    paged.block_shift = shift;
    paged.block_stride = 2 * block_bytes;
    const auto flat = kernels::kv_view::contiguous(kc.data(), vc.data(), kv_type, row_elems);
    const float scale = 1.0f / std::sqrt(float(head_dim));
    std::vector<float> a(q.size()), b(q.size()), scratch(static_cast<size_t>(n_kv));
    kernels::ref::attention(q.data(), flat, n_kv, n_head, n_head_kv, head_dim, scale, a.data(), scratch.data());
    kernels::ref::attention(q.data(), paged, n_kv, n_head, n_head_kv, head_dim, scale, b.data(), scratch.data());
    EXPECT_EQ(a, b) << "reference";
    for (const auto& t : test::available_tables()) {
        if (!t.ops->attention) continue;
        SCOPED_TRACE(t.name);
        t.ops->attention(q.data(), flat, n_kv, n_head, n_head_kv, head_dim, scale, a.data(), scratch.data());
        t.ops->attention(q.data(), paged, n_kv, n_head, n_head_kv, head_dim, scale, b.data(), scratch.data());
        EXPECT_EQ(a, b);
    }
}

// Quantized KV cache (--kv-type q8_0 / q4_0): the dispatched kernel equals the reference on the
// same quantized rows, and both stay close to attention over the unquantized f32 rows.
using qattn_param = std::tuple<ggml_type, int, int, int, int>;  // (type, n_kv, n_head, n_head_kv, head_dim)
class QuantizedKvAttention : public ::testing::TestWithParam<qattn_param> {};

TEST_P(QuantizedKvAttention, MatchesReferenceAndStaysNearF32) {
    const auto [kv_type, n_kv, n_head, n_head_kv, head_dim] = GetParam();
    const int64_t row_elems = int64_t{n_head_kv} * head_dim;
    const size_t row_bytes = row_size(kv_type, row_elems);
    const auto q = test::random_floats(size_t(n_head * head_dim), 21);
    const auto kf = test::random_floats(size_t(n_kv * row_elems), 22);
    const auto vf = test::random_floats(size_t(n_kv * row_elems), 23);
    std::vector<uint8_t> kq(size_t(n_kv) * row_bytes), vq(size_t(n_kv) * row_bytes);
    for (int j = 0; j < n_kv; ++j) {
        quantize_row(kv_type, kf.data() + size_t(j) * size_t(row_elems), kq.data() + size_t(j) * row_bytes, row_elems);
        quantize_row(kv_type, vf.data() + size_t(j) * size_t(row_elems), vq.data() + size_t(j) * row_bytes, row_elems);
    }
    const float scale = 1.0f / std::sqrt(float(head_dim));
    const auto qview = kernels::kv_view::contiguous(kq.data(), vq.data(), kv_type, row_elems);
    const auto fview = kernels::kv_view::contiguous(kf.data(), vf.data(), ggml_type::f32, row_elems);
    std::vector<float> ref(q.size()), exact(q.size()), scratch(static_cast<size_t>(n_kv));
    kernels::ref::attention(q.data(), qview, n_kv, n_head, n_head_kv, head_dim, scale, ref.data(), scratch.data());
    kernels::ref::attention(q.data(), fview, n_kv, n_head, n_head_kv, head_dim, scale, exact.data(), scratch.data());
    test::guarded_buffer out(q.size()), scr(static_cast<size_t>(n_kv));
    kernels::attention(q.data(), qview, n_kv, n_head, n_head_kv, head_dim, scale, out.data(), scr.data());
    EXPECT_TRUE(out.guards_intact());
    EXPECT_TRUE(scr.guards_intact()) << "scratch used beyond n_kv floats";
    EXPECT_LE(nmse(out.data(), ref.data(), ref.size()), k_op_tol);
    // 4-bit rows of uniform random values carry ~1 % NMSE themselves; 8-bit ones ~1e-5.
    EXPECT_LE(nmse(ref.data(), exact.data(), exact.size()), kv_type == ggml_type::q8_0 ? 1e-4 : 3e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, QuantizedKvAttention,
                         ::testing::Values(qattn_param{ggml_type::q8_0, 1, 4, 4, 64},
                                           qattn_param{ggml_type::q8_0, 37, 8, 2, 64},
                                           qattn_param{ggml_type::q8_0, 301, 6, 3, 128},
                                           qattn_param{ggml_type::q4_0, 1, 2, 1, 32},
                                           qattn_param{ggml_type::q4_0, 53, 8, 4, 64},
                                           qattn_param{ggml_type::q4_0, 257, 4, 1, 96}));

TEST(AttentionRef, SinglePositionReturnsItsValue) {
    const auto q = test::random_floats(16, 12), k = test::random_floats(16, 13), v = test::random_floats(16, 14);
    std::vector<float> out(16), scratch(1);
    kernels::attention(q.data(), kernels::kv_view::contiguous(k.data(), v.data(), ggml_type::f32, 16), 1, 1, 1, 16, 0.25f,
                       out.data(), scratch.data());
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(out[i], v[i], 1e-6);
}

TEST(AttentionRef, RejectsBadKvTypeAndHeadGrouping) {
    std::vector<float> q(16), kv(16), out(16), scratch(1);
    kernels::kv_view bad = kernels::kv_view::contiguous(kv.data(), kv.data(), ggml_type::f32, 16);
    bad.type = ggml_type::q5_k;
    EXPECT_THROW(kernels::attention(q.data(), bad, 1, 1, 1, 16, 1.0f, out.data(), scratch.data()), error);
    bad.type = ggml_type::q8_0;  // a 16-wide head is not a whole Q8_0 block
    EXPECT_THROW(kernels::attention(q.data(), bad, 1, 1, 1, 16, 1.0f, out.data(), scratch.data()), error);
    const auto f32 = kernels::kv_view::contiguous(kv.data(), kv.data(), ggml_type::f32, 16);
    EXPECT_THROW(kernels::attention(q.data(), f32, 1, 3, 2, 16, 1.0f, out.data(), scratch.data()), error);
}

TEST(Dispatch, ReportsAnImplementationName) {
    EXPECT_STRNE(kernels::impl_name(kernels::active_impl()), "unknown");
    kernels::set_force_reference(true);
    EXPECT_STREQ(kernels::impl_name(kernels::active_impl()), "reference");
    kernels::set_force_reference(false);
}

// Every ISA's activation quantizers give exactly the portable quantizers' bytes (scales, int8
// values, sums), on random blocks, an all-zero block, a block with one huge value and ties at .5.
TEST(ActivationQuantizers, EveryTableIsBitIdenticalToGeneric) {
    const auto& gen = kernels::cpu::generic_ops();
    for (const int64_t n : {int64_t(256), int64_t(256 * 3)}) {
        auto x = test::random_floats(size_t(n), uint32_t(n), 3.0f);
        std::fill_n(x.begin() + 32, 32, 0.0f);  // an all-zero block of 32 (d = 0)
        x[70] = 1e30f;                            // one block dominated by a single value
        for (int i = 0; i < 32; ++i) x[size_t(96 + i)] = (float(i) - 15.5f) * 0.5f;  // ties after scaling
        for (const auto& table : test::available_tables()) {
            SCOPED_TRACE(table.name + " n=" + std::to_string(n));
            if (table.ops->quantize_q8_32) {
                std::vector<uint8_t> a(size_t(n / 32) * sizeof(kernels::cpu::act_q8_32)), b(a.size());
                gen.quantize_q8_32(x.data(), a.data(), n);
                table.ops->quantize_q8_32(x.data(), b.data(), n);
                EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "q8_32";
            }
            if (table.ops->quantize_q8_k) {
                std::vector<uint8_t> a(size_t(n / QK_K) * sizeof(q8_k_block)), b(a.size());
                gen.quantize_q8_k(x.data(), a.data(), n);
                table.ops->quantize_q8_k(x.data(), b.data(), n);
                EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "q8_k";
            }
        }
    }
}

}  // namespace
}  // namespace edgellm
