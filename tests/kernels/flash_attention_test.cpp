// Flash attention (kernels::flash_attention, flash_attn_impl.h) against the reference: every op
// table's flash kernel and the public dispatcher equal kernels::ref::attention run one query at a
// time, on odd shapes, causal and ragged key counts, GQA groups, F32/F16/Q8_0/Q4_0 caches, key
// counts around the 64-row tile, and paged layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/kernels.h"
#include "kernels/kernel_test_util.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"

using namespace edgellm;

namespace {

// Online softmax in f32 against the double-accumulating reference: the only differences are f32
// rounding of the sums and the polynomial exp (~2e-7 relative), so NMSE stays near 1e-13.
constexpr double k_flash_tol = 1e-10;

struct kv_data {
    std::vector<uint8_t> k, v;
    kernels::kv_view view;
};

// n_kv rows of [n_head_kv][head_dim] random values stored as `t`.
kv_data make_kv(ggml_type t, int64_t n_kv, int64_t row_elems, uint32_t seed) {
    const auto kf = test::random_floats(size_t(n_kv * row_elems), seed);
    const auto vf = test::random_floats(size_t(n_kv * row_elems), seed + 1);
    const size_t rb = row_size(t, row_elems);
    kv_data d;
    d.k.resize(size_t(n_kv) * rb);
    d.v.resize(size_t(n_kv) * rb);
    for (int64_t j = 0; j < n_kv; ++j) {
        quantize_row(t, kf.data() + j * row_elems, d.k.data() + size_t(j) * rb, row_elems);
        quantize_row(t, vf.data() + j * row_elems, d.v.data() + size_t(j) * rb, row_elems);
    }
    d.view = kernels::kv_view::contiguous(d.k.data(), d.v.data(), t, row_elems);
    return d;
}

// The reference: plain softmax attention per query.
std::vector<float> reference(const std::vector<float>& q, int64_t q_stride, const kernels::kv_view& kv,
                             const std::vector<int64_t>& n_kv, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                             float scale) {
    const int64_t n_q = int64_t(n_kv.size());
    std::vector<float> out(size_t(n_q * n_head * head_dim));
    int64_t max_kv = 0;
    for (int64_t n : n_kv) max_kv = std::max(max_kv, n);
    std::vector<float> scratch(static_cast<size_t>(max_kv));
    for (int64_t i = 0; i < n_q; ++i)
        kernels::ref::attention(q.data() + i * q_stride, kv, n_kv[size_t(i)], n_head, n_head_kv, head_dim, scale,
                                out.data() + i * n_head * head_dim, scratch.data());
    return out;
}

// (kv type, n_q, first position, n_head, n_head_kv, head_dim)
using flash_param = std::tuple<ggml_type, int, int, int, int, int>;
class FlashAttention : public ::testing::TestWithParam<flash_param> {};

// Causal prefill: query i sits at position p0 + i and sees rows 0..p0+i.
TEST_P(FlashAttention, CausalMatchesReferenceForEveryTable) {
    // Plain copies, not structured bindings: clang 14 cannot capture those in the lambda below.
    const ggml_type t = std::get<0>(GetParam());
    const int n_q = std::get<1>(GetParam()), p0 = std::get<2>(GetParam()), n_head = std::get<3>(GetParam());
    const int n_head_kv = std::get<4>(GetParam()), head_dim = std::get<5>(GetParam());
    const int64_t n_total = p0 + n_q;
    const int64_t q_dim = int64_t(n_head) * head_dim;
    const int64_t q_stride = q_dim + 5;  // rows need not be packed
    const auto kv = make_kv(t, n_total, int64_t(n_head_kv) * head_dim, 40);
    const auto q = test::random_floats(size_t(n_q * q_stride), 41);
    std::vector<int64_t> n_kv(static_cast<size_t>(n_q));
    for (int i = 0; i < n_q; ++i) n_kv[size_t(i)] = p0 + i + 1;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    const auto ref = reference(q, q_stride, kv.view, n_kv, n_head, n_head_kv, head_dim, scale);
    ASSERT_TRUE(test::all_finite(ref.data(), ref.size()));

    const int64_t out_stride = q_dim + 3;
    auto check = [&](const char* name, auto fn) {
        SCOPED_TRACE(name);
        test::guarded_buffer out(size_t(n_q * out_stride));
        for (size_t i = 0; i < out.size(); ++i) out.data()[i] = 0.0f;
        fn(q.data(), q_stride, kv.view, nullptr, n_kv.data(), n_q, n_head, n_head_kv, head_dim, scale, 0.0f,
           out.data(), out_stride);
        EXPECT_TRUE(out.guards_intact());
        std::vector<float> got(ref.size());
        for (int i = 0; i < n_q; ++i) {
            std::memcpy(got.data() + size_t(i) * size_t(q_dim), out.data() + size_t(i) * size_t(out_stride),
                        size_t(q_dim) * sizeof(float));
            // The gap between rows is not written.
            for (int64_t d = q_dim; d < out_stride && i + 1 < n_q; ++d) EXPECT_EQ(out.data()[i * out_stride + d], 0.0f);
        }
        ASSERT_TRUE(test::all_finite(got.data(), got.size()));
        EXPECT_LE(test::nmse(got.data(), ref.data(), ref.size()), k_flash_tol);
    };
    for (const auto& tb : test::available_tables()) {
        ASSERT_NE(tb.ops->flash_attention, nullptr) << tb.name << " has no flash attention";
        check(tb.name.c_str(), tb.ops->flash_attention);
    }
    check("dispatcher", kernels::flash_attention_ext);
    check("dispatcher (plain)", [](const float* q_, int64_t qs, const kernels::kv_view& v, const int64_t*,
                                   const int64_t* nk, int64_t nq, int64_t nh, int64_t nhk, int64_t hd, float sc, float,
                                   float* o, int64_t os) {
        kernels::flash_attention(q_, qs, v, nk, nq, nh, nhk, hd, sc, o, os);
    });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashAttention,
    ::testing::Values(flash_param{ggml_type::f16, 1, 0, 4, 4, 64},      // one query, one key
                      flash_param{ggml_type::f16, 17, 0, 32, 4, 64},    // prefill from 0, GQA 8:1
                      flash_param{ggml_type::f32, 70, 0, 8, 2, 20},     // keys cross the 64-row tile
                      flash_param{ggml_type::f16, 3, 126, 6, 3, 17},    // odd head_dim, tile edge
                      flash_param{ggml_type::f32, 5, 200, 4, 1, 128},   // MQA, continuation
                      flash_param{ggml_type::f16, 129, 0, 9, 3, 8},     // many queries, tiny heads
                      flash_param{ggml_type::q8_0, 33, 31, 8, 2, 64},   // quantized KV
                      flash_param{ggml_type::q4_0, 9, 64, 4, 1, 96}));  // 4-bit KV, 3 blocks a head

// Ragged key counts (queries of different sequences' lengths, not sorted) and a paged layout give
// the reference's answer too.
TEST(FlashAttentionShapes, RaggedKeyCountsAndPagedRows) {
    const int64_t n_head = 6, n_head_kv = 2, head_dim = 40, row_elems = n_head_kv * head_dim;
    const int64_t n_rows = 150;
    const auto kv = make_kv(ggml_type::f16, n_rows, row_elems, 50);
    const std::vector<int64_t> n_kv{150, 1, 64, 65, 63, 128, 2};
    const int64_t n_q = int64_t(n_kv.size()), q_dim = n_head * head_dim;
    const auto q = test::random_floats(size_t(n_q * q_dim), 51);
    const float scale = 0.125f;
    const auto ref = reference(q, q_dim, kv.view, n_kv, n_head, n_head_kv, head_dim, scale);

    // The same rows in shuffled blocks of 8 rows of a pool, as model::kv_cache lays them out.
    const int shift = 3;
    const int64_t per_block = int64_t{1} << shift, n_blocks = (n_rows + per_block - 1) / per_block;
    const size_t rb = kv.view.row_bytes, block_bytes = size_t(per_block) * rb;
    std::vector<uint8_t> pool(size_t(n_blocks + 2) * 2 * block_bytes, 0xCD);
    std::vector<int32_t> table(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) table[size_t(b)] = int32_t((b * 5 + 1) % (n_blocks + 2));
    for (int64_t j = 0; j < n_rows; ++j) {
        uint8_t* blk = pool.data() + size_t(table[size_t(j >> shift)]) * 2 * block_bytes;
        std::memcpy(blk + size_t(j & (per_block - 1)) * rb, kv.k.data() + size_t(j) * rb, rb);
        std::memcpy(blk + block_bytes + size_t(j & (per_block - 1)) * rb, kv.v.data() + size_t(j) * rb, rb);
    }
    kernels::kv_view paged = kv.view;
    paged.k = pool.data();
    paged.v = pool.data() + block_bytes;
    paged.blocks = table.data();
    paged.block_shift = shift;
    paged.block_stride = 2 * block_bytes;

    for (const kernels::kv_view* view : {&kv.view, static_cast<const kernels::kv_view*>(&paged)}) {
        std::vector<float> out(ref.size());
        kernels::flash_attention(q.data(), q_dim, *view, n_kv.data(), n_q, n_head, n_head_kv, head_dim, scale,
                                 out.data(), q_dim);
        EXPECT_LE(test::nmse(out.data(), ref.data(), ref.size()), k_flash_tol) << (view == &paged ? "paged" : "flat");
    }
}

// Forcing the reference routes flash_attention to the per-query reference: exactly its output.
TEST(FlashAttentionShapes, ForcedReferenceIsThePlainAttention) {
    const int64_t n_head = 4, n_head_kv = 4, head_dim = 32;
    const auto kv = make_kv(ggml_type::f32, 20, n_head_kv * head_dim, 60);
    const std::vector<int64_t> n_kv{18, 19, 20};
    const auto q = test::random_floats(size_t(3 * n_head * head_dim), 61);
    const auto ref = reference(q, n_head * head_dim, kv.view, n_kv, n_head, n_head_kv, head_dim, 0.2f);
    kernels::set_force_reference(true);
    std::vector<float> out(ref.size());
    kernels::flash_attention(q.data(), n_head * head_dim, kv.view, n_kv.data(), 3, n_head, n_head_kv, head_dim, 0.2f,
                             out.data(), n_head * head_dim);
    kernels::set_force_reference(false);
    EXPECT_EQ(out, ref);
}

// Large scores (a query aligned with one key, scale 1) do not overflow the online softmax, and
// a query that sees a single key returns exactly that key's value row.
TEST(FlashAttentionShapes, LargeScoresAndSingleKey) {
    const int64_t head_dim = 16;
    std::vector<float> k(size_t(3 * head_dim), 0.0f), v(size_t(3 * head_dim));
    for (int64_t d = 0; d < head_dim; ++d) {
        k[size_t(d)] = 10.0f;                   // row 0: score 1600 against q
        k[size_t(head_dim + d)] = -10.0f;       // row 1: score -1600
        k[size_t(2 * head_dim + d)] = 9.99f;    // row 2: just below row 0
        v[size_t(d)] = 1.0f, v[size_t(head_dim + d)] = -5.0f, v[size_t(2 * head_dim + d)] = 3.0f;
    }
    std::vector<float> q(size_t(2 * head_dim), 10.0f);
    const auto view = kernels::kv_view::contiguous(k.data(), v.data(), ggml_type::f32, head_dim);
    const std::vector<int64_t> n_kv{1, 3};
    const auto ref = reference(q, head_dim, view, n_kv, 1, 1, head_dim, 1.0f);
    for (const auto& tb : test::available_tables()) {
        SCOPED_TRACE(tb.name);
        std::vector<float> out(ref.size());
        tb.ops->flash_attention(q.data(), head_dim, view, nullptr, n_kv.data(), 2, 1, 1, head_dim, 1.0f, 0.0f,
                                out.data(), head_dim);
        ASSERT_TRUE(test::all_finite(out.data(), out.size()));
        for (int64_t d = 0; d < head_dim; ++d) EXPECT_EQ(out[size_t(d)], 1.0f);
        // Scores near 1600 carry ~1e-4 absolute f32 rounding (the reference sums in double), which
        // e^(s - max) turns into ~1e-4 relative weight error: NMSE ~1e-9 is the f32 floor here.
        EXPECT_LE(test::nmse(out.data(), ref.data(), ref.size()), 1e-7);
    }
}

TEST(FlashAttentionShapes, BadArgumentsAreErrors) {
    std::vector<float> k(16, 0.0f), v(16, 0.0f), q(48, 0.0f), out(48);
    const auto f32 = kernels::kv_view::contiguous(k.data(), v.data(), ggml_type::f32, 16);
    const std::vector<int64_t> one{1}, zero{0};
    EXPECT_THROW(kernels::flash_attention(q.data(), 48, f32, one.data(), 1, 3, 2, 16, 1.0f, out.data(), 48), error);
    EXPECT_THROW(kernels::flash_attention(q.data(), 16, f32, zero.data(), 1, 1, 1, 16, 1.0f, out.data(), 16), error);
    auto bad = f32;
    bad.type = ggml_type::q4_k;
    EXPECT_THROW(kernels::flash_attention(q.data(), 16, bad, one.data(), 1, 1, 1, 16, 1.0f, out.data(), 16), error);
}

}  // namespace

namespace {

// Sliding-window and soft-capped attention (kernels::attention_ext / flash_attention_ext):
// (kv type, n_q, first position, n_head, n_head_kv, head_dim, window, softcap). Query i sits at
// position p0 + i and sees rows max(0, p0 + i - window + 1) .. p0 + i (llama.cpp's standard window:
// a key at distance >= window is masked); window 0 means no window.
using window_param = std::tuple<ggml_type, int, int, int, int, int, int, float>;
class WindowedAttention : public ::testing::TestWithParam<window_param> {};

TEST_P(WindowedAttention, EveryPathMatchesReference) {
    const ggml_type t = std::get<0>(GetParam());
    const int64_t n_q = std::get<1>(GetParam()), p0 = std::get<2>(GetParam());
    const int64_t n_head = std::get<3>(GetParam()), n_head_kv = std::get<4>(GetParam());
    const int64_t head_dim = std::get<5>(GetParam()), window = std::get<6>(GetParam());
    const float cap = std::get<7>(GetParam());
    const int64_t q_dim = n_head * head_dim, n_total = p0 + n_q;
    const auto kv = make_kv(t, n_total, n_head_kv * head_dim, 70);
    // Larger queries so scores reach the soft cap's non-linear range.
    const auto q = test::random_floats(size_t(n_q * q_dim), 71, 3.0f);
    std::vector<int64_t> first(static_cast<size_t>(n_q)), n_kv(static_cast<size_t>(n_q));
    for (int64_t i = 0; i < n_q; ++i) {
        n_kv[size_t(i)] = p0 + i + 1;
        first[size_t(i)] = window > 0 ? std::max<int64_t>(0, p0 + i + 1 - window) : 0;
    }
    const float scale = 1.0f / std::sqrt(float(head_dim));
    std::vector<float> ref(static_cast<size_t>(n_q * q_dim)), scratch(static_cast<size_t>(n_total));
    for (int64_t i = 0; i < n_q; ++i)
        kernels::ref::attention_ext(q.data() + i * q_dim, kv.view, first[size_t(i)], n_kv[size_t(i)], n_head,
                                    n_head_kv, head_dim, scale, cap, ref.data() + i * q_dim, scratch.data());
    ASSERT_TRUE(test::all_finite(ref.data(), ref.size()));

    for (const auto& tb : test::available_tables()) {
        SCOPED_TRACE(tb.name);
        test::guarded_buffer out(ref.size());
        tb.ops->flash_attention(q.data(), q_dim, kv.view, first.data(), n_kv.data(), n_q, n_head, n_head_kv, head_dim,
                                scale, cap, out.data(), q_dim);
        EXPECT_TRUE(out.guards_intact());
        ASSERT_TRUE(test::all_finite(out.data(), out.size()));
        EXPECT_LE(test::nmse(out.data(), ref.data(), ref.size()), k_flash_tol);
    }
    std::vector<float> flash(ref.size()), per_token(ref.size());
    kernels::flash_attention_ext(q.data(), q_dim, kv.view, first.data(), n_kv.data(), n_q, n_head, n_head_kv, head_dim,
                                 scale, cap, flash.data(), q_dim);
    EXPECT_LE(test::nmse(flash.data(), ref.data(), ref.size()), k_flash_tol) << "flash dispatcher";
    for (int64_t i = 0; i < n_q; ++i)
        kernels::attention_ext(q.data() + i * q_dim, kv.view, first[size_t(i)], n_kv[size_t(i)], n_head, n_head_kv,
                               head_dim, scale, cap, per_token.data() + i * q_dim, scratch.data());
    ASSERT_TRUE(test::all_finite(per_token.data(), per_token.size()));
    EXPECT_LE(test::nmse(per_token.data(), ref.data(), ref.size()), k_flash_tol) << "per-token dispatcher";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WindowedAttention,
    ::testing::Values(window_param{ggml_type::f32, 1, 0, 4, 4, 64, 1, 0.0f},         // window of one key
                      window_param{ggml_type::f16, 17, 0, 8, 2, 32, 5, 0.0f},        // prefill, window 5
                      window_param{ggml_type::f32, 70, 0, 8, 2, 20, 64, 0.0f},       // window = tile size
                      window_param{ggml_type::f16, 33, 100, 6, 3, 17, 7, 0.0f},      // continuation, odd dim
                      window_param{ggml_type::f32, 129, 3, 4, 1, 8, 33, 0.0f},       // spans several tiles
                      window_param{ggml_type::q8_0, 9, 60, 4, 2, 64, 13, 0.0f},      // quantized KV
                      window_param{ggml_type::f32, 23, 0, 4, 2, 16, 0, 5.0f},        // softcap only
                      window_param{ggml_type::f16, 40, 30, 8, 4, 24, 16, 2.5f},      // both
                      window_param{ggml_type::f16, 37, 70, 4, 1, 256, 50, 0.0f},     // Gemma 3's heads: window, 4:1
                      window_param{ggml_type::f32, 11, 5, 4, 2, 128, 0, 3.0f},       // wide heads, softcap
                      window_param{ggml_type::q4_0, 5, 127, 4, 1, 32, 200, 50.0f})); // window > context

// The window is the plain attention over the window's rows: ref::attention_ext from row f equals
// ref::attention on a view that starts at row f.
TEST(WindowedAttentionRef, WindowIsAttentionOverTheLastRows) {
    const int64_t n_head = 4, n_head_kv = 2, head_dim = 16, row = n_head_kv * head_dim;
    const auto kv = make_kv(ggml_type::f32, 30, row, 80);
    const auto q = test::random_floats(size_t(n_head * head_dim), 81);
    std::vector<float> scratch(30), a(size_t(n_head * head_dim)), b(a.size());
    kernels::ref::attention_ext(q.data(), kv.view, 21, 30, n_head, n_head_kv, head_dim, 0.3f, 0.0f, a.data(),
                                scratch.data());
    const auto shifted = kernels::kv_view::contiguous(kv.k.data() + 21 * kv.view.row_bytes,
                                                      kv.v.data() + 21 * kv.view.row_bytes, ggml_type::f32, row);
    kernels::ref::attention(q.data(), shifted, 9, n_head, n_head_kv, head_dim, 0.3f, b.data(), scratch.data());
    EXPECT_EQ(a, b);
}

// Soft-capping by hand: one head, two keys with scores s0 = 8, s1 = 0 (scale 1) and cap 2:
// weights softmax(2 tanh(4), 0).
TEST(WindowedAttentionRef, SoftcapSquashesScores) {
    const std::vector<float> q{2.0f, 2.0f}, k{2.0f, 2.0f, 0.0f, 0.0f}, v{1.0f, 0.0f, 0.0f, 1.0f};
    const auto view = kernels::kv_view::contiguous(k.data(), v.data(), ggml_type::f32, 2);
    std::vector<float> out(2), scratch(2);
    kernels::ref::attention_ext(q.data(), view, 0, 2, 1, 1, 2, 1.0f, 2.0f, out.data(), scratch.data());
    const double e = std::exp(2.0 * std::tanh(4.0));
    EXPECT_NEAR(out[0], e / (e + 1.0), 1e-6);
    EXPECT_NEAR(out[1], 1.0 / (e + 1.0), 1e-6);
    std::vector<float> cap{-100.0f, 0.0f, 1.0f, 100.0f};
    kernels::ref::softcap(cap.data(), 4, 30.0f);
    EXPECT_NEAR(cap[0], -30.0 * std::tanh(100.0 / 30.0), 1e-5);
    EXPECT_EQ(cap[1], 0.0f);
    EXPECT_NEAR(cap[3], 30.0 * std::tanh(100.0 / 30.0), 1e-5);
}

TEST(WindowedAttentionRef, EmptyKeyRangesAreErrors) {
    std::vector<float> k(16, 0.0f), v(16, 0.0f), q(16, 0.0f), out(16), scratch(4);
    const auto f32 = kernels::kv_view::contiguous(k.data(), v.data(), ggml_type::f32, 16);
    const std::vector<int64_t> first{1}, n_kv{1};
    EXPECT_THROW(kernels::flash_attention_ext(q.data(), 16, f32, first.data(), n_kv.data(), 1, 1, 1, 16, 1.0f, 0.0f,
                                              out.data(), 16),
                 error);
    EXPECT_THROW(kernels::attention_ext(q.data(), f32, 1, 1, 1, 1, 16, 1.0f, 0.0f, out.data(), scratch.data()), error);
}

}  // namespace
