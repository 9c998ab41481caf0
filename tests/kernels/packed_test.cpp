// Packed (x8 repacked) weights: every layout round-trips byte-exactly, and every ISA's packed
// gemm matches the scalar reference product on the original rows (same per-type tolerance as
// mul_mat), on odd shapes (tail rows, 1 block), with guard bytes and 1 vs 3 threads identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "kernel_test_util.h"
#include "core/error.h"
#include "kernels/cpu/packed.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

namespace edgellm {
namespace {

using kernels::cpu::k_pack_rows;
using kernels::cpu::packed_layout_for;
using test::tolerance;

const ggml_type k_all_types[] = {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1,
                                 ggml_type::q8_0, ggml_type::q2_k, ggml_type::q3_k, ggml_type::q4_k,
                                 ggml_type::q5_k, ggml_type::q6_k, ggml_type::f16,  ggml_type::bf16, ggml_type::f32};

std::vector<ggml_type> packed_types() {
    std::vector<ggml_type> out;
    for (auto t : k_all_types)
        if (packed_layout_for(t)) out.push_back(t);
    return out;
}

TEST(Packed, TheCommonDecodeTypesHaveALayout) {
    for (auto t : {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q8_0, ggml_type::q4_k, ggml_type::q6_k})
        EXPECT_NE(packed_layout_for(t), nullptr) << type_traits(t).name;
}

// (type, blocks per row, n_rows, n_tokens)
using pk_param = std::tuple<ggml_type, int, int, int>;
class PackedMulMat : public ::testing::TestWithParam<pk_param> {};

TEST_P(PackedMulMat, RoundTripsAndEveryGemmMatchesReference) {
    const auto [type, n_blocks, n_rows, n_tokens] = GetParam();
    const auto& l = *packed_layout_for(type);
    const int64_t n_cols = int64_t(n_blocks) * type_traits(type).block_size;
    const uint32_t seed = uint32_t(n_rows * 977 + n_tokens * 13 + n_blocks);
    const auto w = test::random_weights(type, n_rows, n_cols, seed);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), seed + 1);
    const size_t rb = row_size(type, n_cols);

    std::vector<uint8_t> packed(kernels::cpu::packed_bytes(l, n_rows, n_cols));
    kernels::cpu::pack_matrix(l, w.data(), n_rows, n_cols, packed.data(), 3);
    // Round trip: every group unpacks to its 8 original rows; the tail is the original tail.
    const int64_t n_groups = n_rows / k_pack_rows;
    const size_t gb = l.group_bytes(n_cols);
    std::vector<uint8_t> back(w.size());
    for (int64_t g = 0; g < n_groups; ++g) l.unpack(packed.data() + size_t(g) * gb, n_cols, back.data() + size_t(g) * k_pack_rows * rb, rb);
    std::memcpy(back.data() + size_t(n_groups) * k_pack_rows * rb, packed.data() + size_t(n_groups) * gb,
                size_t(n_rows % k_pack_rows) * rb);
    ASSERT_EQ(0, std::memcmp(back.data(), w.data(), w.size())) << "pack/unpack is not the identity";

    const size_t n_out = size_t(n_rows * n_tokens);
    std::vector<float> y_ref(n_out);
    kernels::ref::mul_mat(type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
    std::vector<float> wrow(static_cast<size_t>(n_cols));
    double product_norm = 0.0;  // see mul_mat_test: the scale of the quantization noise
    for (int64_t r = 0; r < n_rows; ++r) {
        kernels::ref::get_row(type, w.data(), n_cols, r, wrow.data());
        for (int64_t t = 0; t < n_tokens; ++t)
            for (int64_t c = 0; c < n_cols; ++c) product_norm += double(wrow[c] * x[t * n_cols + c]) * (wrow[c] * x[t * n_cols + c]);
    }
    int n_gemms = 0;
    for (const auto& table : test::available_tables()) {
        const auto gemm = table.ops->packed_gemm_for ? table.ops->packed_gemm_for(type) : nullptr;
        if (!gemm) continue;
        ++n_gemms;
        SCOPED_TRACE(table.name);
        test::guarded_buffer y1(n_out), yn(n_out);
        kernels::cpu::mul_mat_packed(*table.ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y1.data(), 1);
        kernels::cpu::mul_mat_packed(*table.ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, yn.data(), 3);
        EXPECT_TRUE(y1.guards_intact() && yn.guards_intact()) << "write outside the output";
        ASSERT_TRUE(test::all_finite(y1.data(), n_out));
        double err = 0.0;
        for (size_t i = 0; i < n_out; ++i) err += (double(y1.data()[i]) - y_ref[i]) * (double(y1.data()[i]) - y_ref[i]);
        EXPECT_LE(err / product_norm, tolerance(type)) << "error relative to the summands";
        if (n_out >= 32) {
            EXPECT_LE(test::nmse(y1.data(), y_ref.data(), n_out), tolerance(type));
        }
        EXPECT_EQ(0, std::memcmp(y1.data(), yn.data(), n_out * sizeof(float))) << "1 and 3 threads differ";
    }
    // The public entry: the reference path (unpack + reference product) is exact.
    std::vector<float> y(n_out);
    kernels::set_force_reference(true);
    kernels::mul_mat_packed(type, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 2);
    kernels::set_force_reference(false);
    EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), n_out * sizeof(float))) << "reference path of mul_mat_packed";
    if (n_gemms == 0) GTEST_LOG_(INFO) << "no ISA on this CPU has a packed gemm for " << type_name(type);
}

std::vector<pk_param> pk_params() {
    const std::pair<int, int> rows_tokens[] = {{8, 1}, {16, 2}, {17, 3}, {33, 5}, {127, 8}, {129, 9}, {64, 13}, {1023, 1}};
    std::vector<pk_param> out;
    for (auto t : packed_types()) {
        // F16 / BF16 (1-element blocks): 37, 101, 293 columns hit the 32-column blocks' and the
        // 16-lane loops' tails; 549 = 17 * 32 + 5.
        const bool per_element = type_traits(t).block_size == 1;
        for (int nb : per_element ? std::vector<int>{37, 101, 293} : std::vector<int>{1, 3, 9})
            for (auto [r, tok] : rows_tokens) out.emplace_back(t, nb, r, tok);
        // 17-block rows (an odd count past the 16 a 512-bit loop might assume) with odd row counts.
        out.emplace_back(t, per_element ? 549 : 17, 17, 5);
        out.emplace_back(t, per_element ? 549 : 17, 25, 1);
        // 21 tokens (tiles 8 + 8 + 5), 25 rows (3 groups and a tail row): from 16 tokens an ISA's
        // two-group gemm (Q4_K / Q5_K on AVX-512) takes groups 0-1, the one-group gemm group 2.
        if (!per_element) out.emplace_back(t, 3, 25, 21);
        // F16 / BF16: no column tail (64 = 2 blocks), and a tail only (31 < 32: 7 steps of 4 and 3
        // single columns).
        if (per_element) {
            out.emplace_back(t, 64, 17, 4);
            out.emplace_back(t, 31, 9, 2);
        }
    }
    return out;
}

std::string pk_name(const ::testing::TestParamInfo<pk_param>& info) {
    const auto [t, nb, r, tok] = info.param;
    return std::string(type_name(t)) + "_b" + std::to_string(nb) + "_r" + std::to_string(r) + "_t" + std::to_string(tok);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackedMulMat, ::testing::ValuesIn(pk_params()), pk_name);

// A K-quant token's result must not depend on how many tokens share the call (prefill vs decode
// give the same logits): 21 tokens at once (full tiles, a tail, and for Q4_K / Q5_K on AVX-512
// the two-group prefill gemm) equal 21 single-token calls bit for bit. (The 32-element types'
// and F16's single-token paths sum in another order, so they are not bit-identical.)
TEST(PackedDispatch, AKQuantTokensResultDoesNotDependOnTheBatch) {
    int n_checked = 0;
    for (auto type : {ggml_type::q2_k, ggml_type::q3_k, ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k}) {
        if (!packed_layout_for(type)) continue;
        const auto& l = *packed_layout_for(type);
        const int64_t n_rows = 25, n_tokens = 21;  // groups 0-1 in the two-group gemm, group 2 alone, a tail row
        const int64_t n_cols = 3 * QK_K;
        const auto w = test::random_weights(type, n_rows, n_cols, 91);
        const auto x = test::random_floats(size_t(n_cols * n_tokens), 92);
        std::vector<uint8_t> packed(kernels::cpu::packed_bytes(l, n_rows, n_cols));
        kernels::cpu::pack_matrix(l, w.data(), n_rows, n_cols, packed.data(), 1);
        for (const auto& table : test::available_tables()) {
            const auto gemm = table.ops->packed_gemm_for ? table.ops->packed_gemm_for(type) : nullptr;
            if (!gemm) continue;
            ++n_checked;
            SCOPED_TRACE(std::string(type_name(type)) + " " + table.name);
            std::vector<float> all(size_t(n_rows * n_tokens));
            std::vector<float> one(static_cast<size_t>(n_rows));
            kernels::cpu::mul_mat_packed(*table.ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, all.data(), 1);
            for (int64_t t = 0; t < n_tokens; ++t) {
                kernels::cpu::mul_mat_packed(*table.ops, l, gemm, packed.data(), n_rows, n_cols, x.data() + t * n_cols, 1, one.data(), 1);
                EXPECT_EQ(0, std::memcmp(one.data(), all.data() + t * n_rows, size_t(n_rows) * sizeof(float))) << "token " << t;
            }
        }
    }
    if (n_checked == 0) GTEST_SKIP() << "no packed gemm on this CPU";
}

// Rows whose every quant bit is set (Q4_0 / Q4_1 / Q4_K: q = 15, Q5_0 / Q5_K: q = 31, Q3_K: q = 7, Q2_K:
// q = 3; K scales and mins 63, Q3_K's signed scales 31, Q2_K's 15) with block scales (and Q4_1
// mins) 1: the largest unsigned weights the gemms see, against activations of +-1
// (quantized to exactly +-127). Summing too many maddubs pairs in i16 would saturate and be off
// by thousands; the exact answer is an integer the gemm must reproduce to f32 rounding.
std::vector<uint8_t> saturated_rows(ggml_type t, int64_t n_rows, int64_t n_cols) {
    std::vector<uint8_t> w(row_size(t, n_cols) * size_t(n_rows), 0xFF);
    const uint16_t one = 0x3C00;  // f16 1.0
    const size_t bb = type_traits(t).type_size;
    for (size_t at = 0; at < w.size(); at += bb) {
        switch (t) {
            case ggml_type::q4_0:
            case ggml_type::q5_0: std::memcpy(&w[at], &one, 2); break;
            case ggml_type::q4_1:
                std::memcpy(&w[at + offsetof(q4_1_block, d)], &one, 2);
                std::memcpy(&w[at + offsetof(q4_1_block, m)], &one, 2);
                break;
            case ggml_type::q5_1:
                std::memcpy(&w[at + offsetof(q5_1_block, d)], &one, 2);
                std::memcpy(&w[at + offsetof(q5_1_block, m)], &one, 2);
                break;
            case ggml_type::q3_k: std::memcpy(&w[at + offsetof(q3_k_block, d)], &one, 2); break;
            case ggml_type::q2_k:
                std::memcpy(&w[at + offsetof(q2_k_block, d)], &one, 2);
                std::memcpy(&w[at + offsetof(q2_k_block, dmin)], &one, 2);
                break;
            case ggml_type::q4_k:
            case ggml_type::q5_k:
                std::memcpy(&w[at], &one, 2);
                std::memcpy(&w[at + 2], &one, 2);
                break;
            default: ADD_FAILURE() << "no saturated block for " << type_name(t);
        }
    }
    return w;
}

TEST(PackedMulMatExtremes, LargestWeightsAndActivationsDoNotSaturate) {
    for (auto type : {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q2_k, ggml_type::q3_k, ggml_type::q4_k, ggml_type::q5_k}) {
        const auto* l = packed_layout_for(type);
        if (!l) continue;
        SCOPED_TRACE(type_name(type));
        const int64_t n_rows = 16, n_cols = 3 * type_traits(type).block_size * (type_traits(type).block_size == 32 ? 8 : 1);
        const int64_t n_tokens = 17;  // tiles 8 + 8 + 1; from 16 tokens Q4_K / Q5_K take the two-group gemm
        const auto w = saturated_rows(type, n_rows, n_cols);
        std::vector<float> x(size_t(n_cols * n_tokens));
        for (int64_t t = 0; t < n_tokens; ++t)
            for (int64_t c = 0; c < n_cols; ++c) x[size_t(t * n_cols + c)] = (t % 2 ? -1.0f : 1.0f);
        std::vector<uint8_t> packed(kernels::cpu::packed_bytes(*l, n_rows, n_cols));
        kernels::cpu::pack_matrix(*l, w.data(), n_rows, n_cols, packed.data(), 1);
        std::vector<float> y_ref(size_t(n_rows * n_tokens));
        kernels::ref::mul_mat(type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
        for (const auto& table : test::available_tables()) {
            const auto gemm = table.ops->packed_gemm_for ? table.ops->packed_gemm_for(type) : nullptr;
            if (!gemm) continue;
            SCOPED_TRACE(table.name);
            std::vector<float> y(y_ref.size());
            kernels::cpu::mul_mat_packed(*table.ops, *l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 1);
            for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], y_ref[i], 1e-5 * std::abs(y_ref[i]) + 1e-3) << "output " << i;
        }
    }
}

// model::repack packs a large matrix in slices of whole groups (dropping each slice's file pages
// as it goes): packing rows [r0, r1) at byte packed_size(type, r0) must give the same bytes as
// packing the whole matrix, the last slice bringing the tail rows.
TEST(PackedDispatch, PackingInSlicesOfGroupsEqualsPackingTheWholeMatrix) {
    int n_checked = 0;
    for (auto type : packed_types()) {
        const int64_t n_rows = 45, n_cols = type_traits(type).block_size == 1 ? 101 : 2 * type_traits(type).block_size;
        if (kernels::packed_size(type, n_rows, n_cols) == 0) continue;  // no gemm on this CPU
        SCOPED_TRACE(type_name(type));
        ++n_checked;
        const auto w = test::random_weights(type, n_rows, n_cols, 11);
        const size_t rb = row_size(type, n_cols);
        std::vector<uint8_t> whole(kernels::packed_size(type, n_rows, n_cols)), sliced(whole.size(), 0xAB);
        kernels::pack_weights(type, w.data(), n_rows, n_cols, whole.data(), 1);
        for (int64_t r0 = 0; r0 < n_rows; r0 += 16) {  // slices 16, 16, 13 (8 + 5 tail rows)
            const int64_t n = std::min<int64_t>(16, n_rows - r0);
            const size_t at = r0 == 0 ? 0 : kernels::packed_size(type, r0, n_cols);
            kernels::pack_weights(type, w.data() + rb * size_t(r0), n, n_cols, sliced.data() + at, 1);
        }
        EXPECT_EQ(0, std::memcmp(whole.data(), sliced.data(), whole.size()));
    }
    if (n_checked == 0) GTEST_SKIP() << "no packed gemm on this CPU";
}

// Each token's outputs do not depend on the token tile it ran in: for every ISA's gemm, one
// group against 11 tokens (tiles of 2..8 plus remainders) gives, per token, bit-identical outputs
// to a 1-token call (the engine's batch-invariant mode and the decode-batch split rely on it).
// Column counts with a tail for F16 / BF16 (101 = 3 blocks + 5).
TEST(PackedDispatch, EveryGemmIsIndependentOfItsTokenTile) {
    int n_checked = 0;
    for (auto type : packed_types()) {
        const auto& l = *packed_layout_for(type);
        const int64_t n_cols = type_traits(type).block_size == 1 ? 101 : 3 * type_traits(type).block_size;
        const int64_t n_tokens = 11;
        const auto w = test::random_weights(type, k_pack_rows, n_cols, 31);
        const auto x = test::random_floats(size_t(n_cols * n_tokens), 32);
        std::vector<uint8_t> group(l.group_bytes(n_cols));
        l.pack(w.data(), row_size(type, n_cols), n_cols, group.data());
        for (const auto& table : test::available_tables()) {
            const auto gemm = table.ops->packed_gemm_for ? table.ops->packed_gemm_for(type) : nullptr;
            if (!gemm) continue;
            SCOPED_TRACE(std::string(type_name(type)) + " " + table.name);
            ++n_checked;
            size_t a_row_bytes = 0;
            const uint8_t* act = kernels::cpu::prepare_activations(*table.ops, l.act, x.data(), n_tokens, n_cols, 1, &a_row_bytes);
            const std::vector<uint8_t> a(act, act + a_row_bytes * size_t(n_tokens));
            std::vector<float> y(size_t(k_pack_rows * n_tokens)), y1(k_pack_rows);
            gemm(group.data(), a.data(), a_row_bytes, n_tokens, n_cols, y.data(), k_pack_rows);
            for (int64_t t = 0; t < n_tokens; ++t) {
                gemm(group.data(), a.data() + a_row_bytes * size_t(t), a_row_bytes, 1, n_cols, y1.data(), k_pack_rows);
                EXPECT_EQ(0, std::memcmp(y1.data(), y.data() + t * k_pack_rows, k_pack_rows * sizeof(float))) << "token " << t;
            }
        }
    }
    if (n_checked == 0) GTEST_SKIP() << "no packed gemm on this CPU";
}

// The loader repacks a matrix only where the CPU's best table has the gemm for its layout:
// packed_size is zero exactly where that gemm is missing. The generic table has no packed gemms;
// NEON (dotprod) and AVX2 have one for every layout, Q4_1 / Q5_1 and (AVX2) F16 / BF16 included.
TEST(PackedDispatch, ALayoutIsUsedOnlyWhereTheBestTableHasItsGemm) {
    const char* no_repack = std::getenv("EDGELLM_NO_REPACK");
    if (no_repack && *no_repack && std::strcmp(no_repack, "0") != 0) GTEST_SKIP() << "EDGELLM_NO_REPACK is set";
    const auto& best = *test::available_tables().back().ops;
    for (auto type : packed_types()) {
        SCOPED_TRACE(type_name(type));
        const bool has_gemm = best.packed_gemm_for && best.packed_gemm_for(type);
        const int64_t n_cols = type_traits(type).block_size == 1 ? 64 : 2 * type_traits(type).block_size;
        EXPECT_EQ(kernels::packed_size(type, 16, n_cols) != 0, has_gemm);
    }
    EXPECT_EQ(kernels::cpu::generic_ops().packed_gemm_for ? kernels::cpu::generic_ops().packed_gemm_for(ggml_type::q4_1) : nullptr,
              nullptr);
    for (const auto* ops : {kernels::cpu::neon_ops(), kernels::cpu::avx2_ops()}) {
        if (!ops) continue;
        for (auto type : packed_types()) EXPECT_NE(ops->packed_gemm_for(type), nullptr) << type_name(type);
    }
}

// The 32-element types' packed gemms and the per-row fast dots (mul_mat on the GGUF rows) take the
// same 8-bit activation blocks and the same integer block sums and scales; for Q4_1 / Q5_1 the
// same min term m * dy * (integer sum of the block's int8 activations). Only the f32 summation
// order differs, so the two agree far below the reference tolerance, also with activations of
// nonzero mean and an outlier channel (where a min term built from another block sum, e.g. the
// float sum of the unquantized block, would show), on 17-block rows and odd row counts (tail rows).
TEST(PackedDispatch, LegacyGemmsComputeWhatThePerRowDotsCompute) {
    int n_checked = 0;
    for (auto type : {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0}) {
        const int64_t n_rows = 43, n_cols = 17 * 32;
        if (kernels::packed_size(type, n_rows, n_cols) == 0) continue;
        SCOPED_TRACE(type_name(type));
        ++n_checked;
        const auto w = test::random_weights(type, n_rows, n_cols, 21);
        for (int64_t n_tokens : {1, 5, 9}) {
            auto x = test::random_floats(size_t(n_cols * n_tokens), 22 + uint32_t(n_tokens));
            for (int64_t t = 0; t < n_tokens; ++t) {
                for (int64_t c = 0; c < n_cols; ++c) x[size_t(t * n_cols + c)] += 0.7f;
                x[size_t(t * n_cols + 37)] = 25.0f;
            }
            std::vector<uint8_t> p(kernels::packed_size(type, n_rows, n_cols));
            kernels::pack_weights(type, w.data(), n_rows, n_cols, p.data(), 1);
            std::vector<float> y(size_t(n_rows * n_tokens)), y_row(y.size());
            kernels::mul_mat_packed(type, p.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 2);
            kernels::mul_mat(type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_row.data(), 2);
            EXPECT_LE(test::nmse(y.data(), y_row.data(), y.size()), 1e-11) << n_tokens << " tokens";
        }
    }
    if (n_checked == 0) GTEST_SKIP() << "no packed gemm for the 32-element types on this CPU";
}

TEST(PackedDispatch, SizeIsZeroWhenNotPackedAndPublicProductMatches) {
    EXPECT_EQ(kernels::packed_size(ggml_type::f32, 64, 64), 0u) << "f32 has no packed layout";
    EXPECT_EQ(kernels::packed_size(ggml_type::q4_0, 7, 64), 0u) << "fewer rows than one group";
    const int64_t n_rows = 40, n_cols = 128, n_tokens = 6;
    const size_t n = kernels::packed_size(ggml_type::q4_0, n_rows, n_cols);
    if (n == 0) GTEST_SKIP() << "this CPU has no packed Q4_0 gemm (needs AVX2)";
    const auto w = test::random_weights(ggml_type::q4_0, n_rows, n_cols, 3);
    const auto x = test::random_floats(size_t(n_cols * n_tokens), 4);
    std::vector<uint8_t> p(n);
    kernels::pack_weights(ggml_type::q4_0, w.data(), n_rows, n_cols, p.data(), 2);
    std::vector<float> y(size_t(n_rows * n_tokens)), y_plain(y.size());
    kernels::mul_mat_packed(ggml_type::q4_0, p.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 2);
    kernels::mul_mat(ggml_type::q4_0, w.data(), n_rows, n_cols, x.data(), n_tokens, y_plain.data(), 2);
    // Same integer sums and scales as the plain fast path, only summed in another order.
    EXPECT_LE(test::nmse(y.data(), y_plain.data(), y.size()), 1e-10);
    EXPECT_THROW(kernels::pack_weights(ggml_type::f32, w.data(), 8, 32, p.data(), 1), error);
}

// The work split (packed.cpp): decode products take guided items (each 1 / (2 * threads) of the
// groups left, down to 2 groups), prefill items of 2 groups. Every output is written once by one
// thread in a fixed order, so any thread count gives the same bits, and no row is skipped: odd group
// counts (19 groups + 5 tail rows), 1 / 8 tokens (the decode split) and 9 / 12 tokens (prefill).
TEST(PackedDispatch, EveryThreadCountWritesEveryRowWithTheSameBits) {
    const ggml_type type = ggml_type::q6_k;
    const int64_t n_rows = 19 * k_pack_rows + 5, n_cols = 2 * 256;
    const auto& l = *packed_layout_for(type);
    const auto w = test::random_weights(type, n_rows, n_cols, 11);
    std::vector<uint8_t> packed(kernels::cpu::packed_bytes(l, n_rows, n_cols));
    kernels::cpu::pack_matrix(l, w.data(), n_rows, n_cols, packed.data(), 2);
    int n_checked = 0;
    for (const auto& table : test::available_tables()) {
        const auto gemm = table.ops->packed_gemm_for ? table.ops->packed_gemm_for(type) : nullptr;
        if (!gemm) continue;
        SCOPED_TRACE(table.name);
        for (int64_t n_tokens : {1, 8, 9, 12}) {
            const auto x = test::random_floats(size_t(n_cols * n_tokens), uint32_t(12 + n_tokens));
            const size_t n_out = size_t(n_rows * n_tokens);
            std::vector<float> y_ref(n_out);
            kernels::ref::mul_mat(type, w.data(), n_rows, n_cols, x.data(), n_tokens, y_ref.data());
            test::guarded_buffer y1(n_out);
            std::fill(y1.data(), y1.data() + n_out, std::nanf(""));
            kernels::cpu::mul_mat_packed(*table.ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y1.data(), 1);
            ASSERT_TRUE(test::all_finite(y1.data(), n_out)) << "a row was not written, tokens " << n_tokens;
            EXPECT_LE(test::nmse(y1.data(), y_ref.data(), n_out), tolerance(type)) << "tokens " << n_tokens;
            for (int nt : {2, 3, 4, 7}) {
                test::guarded_buffer yn(n_out);
                std::fill(yn.data(), yn.data() + n_out, std::nanf(""));
                kernels::cpu::mul_mat_packed(*table.ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, yn.data(), nt);
                EXPECT_TRUE(yn.guards_intact()) << "write outside the output";
                EXPECT_EQ(0, std::memcmp(y1.data(), yn.data(), n_out * sizeof(float)))
                    << "1 and " << nt << " threads differ, tokens " << n_tokens;
            }
            ++n_checked;
        }
    }
    if (n_checked == 0) GTEST_SKIP() << "no packed Q6_K gemm on this CPU";
}

}  // namespace
}  // namespace edgellm
