// The CUDA kernels' per-block dequantizers (src/kernels/cuda/dequant_blocks.h), compiled here as
// plain host C++, against the quant module's reference dequantizers: bit for bit, for every
// weight type the CUDA mul_mat / get_row take. Runs on any machine (no GPU, no nvcc needed).
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/dequant_blocks.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm {
namespace {

namespace dq = kernels::cuda::dq;

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// First index where the two float arrays differ in their bits, or -1.
int64_t first_bit_difference(const float* a, const float* b, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (bits(a[i]) != bits(b[i])) return static_cast<int64_t>(i);
    return -1;
}

TEST(CudaDequantBlocks, F16ToF32MatchesTheReferenceForAll65536Inputs) {
    for (uint32_t h = 0; h < 0x10000u; ++h) {
        const float got = dq::f16_to_f32(static_cast<uint16_t>(h));
        const float want = fp16_to_fp32(static_cast<fp16_bits>(h));
        ASSERT_EQ(bits(got), bits(want)) << "f16 bits 0x" << std::hex << h;
    }
}

TEST(CudaDequantBlocks, Bf16ToF32MatchesTheReferenceForAll65536Inputs) {
    for (uint32_t h = 0; h < 0x10000u; ++h)
        ASSERT_EQ(bits(dq::bf16_to_f32(static_cast<uint16_t>(h))), bits(bf16_to_fp32(static_cast<bf16_bits>(h))))
            << "bf16 bits 0x" << std::hex << h;
}

TEST(CudaDequantBlocks, F32ToF16MatchesTheReference) {
    // Special values, every rounding boundary region, then random bit patterns of all kinds.
    std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f,
                             5.9604644775390625e-8f, 2.98023223876953125e-8f, 2.9802326e-8f, 6.1035156e-5f,
                             6.1035152e-5f, INFINITY, -INFINITY, NAN, from_bits(0x7f800001u), from_bits(0xffc12345u),
                             1e-30f, 1e30f, 3.0e-5f, 0.1f};
    for (uint32_t e = 100; e < 150; ++e)  // around the f16 range, with ties (mantissa ...1000...)
        for (uint32_t m : {0x000000u, 0x001000u, 0x003000u, 0x000fffu, 0x001001u, 0x7fffffu, 0x400000u})
            for (uint32_t s : {0u, 0x80000000u}) xs.push_back(from_bits(s | (e << 23) | m));
    std::mt19937 rng(7);
    for (int i = 0; i < 1000000; ++i) xs.push_back(from_bits(rng()));
    for (float x : xs)
        ASSERT_EQ(dq::f32_to_f16(x), fp32_to_fp16(x)) << "f32 bits 0x" << std::hex << bits(x);
}

struct type_case {
    ggml_type type;
    const char* name;
};

const type_case k_types[] = {
    {ggml_type::q4_0, "Q4_0"}, {ggml_type::q4_1, "Q4_1"}, {ggml_type::q5_0, "Q5_0"}, {ggml_type::q5_1, "Q5_1"},
    {ggml_type::q8_0, "Q8_0"}, {ggml_type::q2_k, "Q2_K"}, {ggml_type::q3_k, "Q3_K"}, {ggml_type::q4_k, "Q4_K"},
    {ggml_type::q5_k, "Q5_K"}, {ggml_type::q6_k, "Q6_K"},
};

// Dequantizes a row of n_blocks blocks chunk by chunk, through the run-time dispatcher and
// through the type's traits (the two entry points the kernels use), checking they agree.
std::vector<float> dequant_with_chunks(ggml_type t, const void* row, int64_t n_blocks) {
    const int qk = dq::chunk_block_size(t);
    std::vector<float> out(static_cast<size_t>(n_blocks * qk));
    for (int64_t ib = 0; ib < n_blocks; ++ib) {
        for (int c = 0; c < qk / dq::k_chunk; ++c) {
            float* dst = out.data() + ib * qk + c * dq::k_chunk;
            EXPECT_TRUE(dq::dequant_chunk(t, row, ib, c, dst));
        }
    }
    return out;
}

template <ggml_type T>
std::vector<float> dequant_with_traits(const void* row, int64_t n_blocks) {
    using tr = dq::block_traits<T>;
    std::vector<float> out(static_cast<size_t>(n_blocks * tr::qk));
    for (int64_t ib = 0; ib < n_blocks; ++ib)
        for (int c = 0; c < tr::chunks; ++c) tr::chunk(row, ib, c, out.data() + ib * tr::qk + c * dq::k_chunk);
    return out;
}

std::vector<float> dequant_with_traits(ggml_type t, const void* row, int64_t n_blocks) {
    switch (t) {
        case ggml_type::q4_0: return dequant_with_traits<ggml_type::q4_0>(row, n_blocks);
        case ggml_type::q4_1: return dequant_with_traits<ggml_type::q4_1>(row, n_blocks);
        case ggml_type::q5_0: return dequant_with_traits<ggml_type::q5_0>(row, n_blocks);
        case ggml_type::q5_1: return dequant_with_traits<ggml_type::q5_1>(row, n_blocks);
        case ggml_type::q8_0: return dequant_with_traits<ggml_type::q8_0>(row, n_blocks);
        case ggml_type::q2_k: return dequant_with_traits<ggml_type::q2_k>(row, n_blocks);
        case ggml_type::q3_k: return dequant_with_traits<ggml_type::q3_k>(row, n_blocks);
        case ggml_type::q4_k: return dequant_with_traits<ggml_type::q4_k>(row, n_blocks);
        case ggml_type::q5_k: return dequant_with_traits<ggml_type::q5_k>(row, n_blocks);
        case ggml_type::q6_k: return dequant_with_traits<ggml_type::q6_k>(row, n_blocks);
        default: ADD_FAILURE() << "no traits"; return {};
    }
}

// The reference dequantization of row, bit-compared with both chunk paths.
void expect_bit_exact(ggml_type t, const std::vector<uint8_t>& row, int64_t n_blocks, const std::string& what) {
    const int64_t n = n_blocks * dq::chunk_block_size(t);
    std::vector<float> want(static_cast<size_t>(n));
    dequantize_row(t, row.data(), want.data(), n);
    for (float v : want) ASSERT_FALSE(std::isnan(v)) << what << ": the test data must be NaN-free";
    const auto got = dequant_with_chunks(t, row.data(), n_blocks);
    const auto got_traits = dequant_with_traits(t, row.data(), n_blocks);
    const int64_t i = first_bit_difference(got.data(), want.data(), want.size());
    EXPECT_EQ(i, -1) << what << ": element " << i << " (block " << i / dq::chunk_block_size(t) << ") is "
                     << (i >= 0 ? got[size_t(i)] : 0.0f) << ", reference " << (i >= 0 ? want[size_t(i)] : 0.0f);
    EXPECT_EQ(first_bit_difference(got_traits.data(), want.data(), want.size()), -1) << what << " (traits)";
}

class CudaDequantBlocksType : public ::testing::TestWithParam<type_case> {};

TEST_P(CudaDequantBlocksType, ChunkSizeMatchesTheTypeTraits) {
    const ggml_type t = GetParam().type;
    EXPECT_EQ(dq::chunk_block_size(t), type_traits(t).block_size);
    EXPECT_EQ(dq::chunk_block_size(t) % dq::k_chunk, 0);
}

// Rows made by the project's quantizer from random normal floats, at several magnitudes: tiny
// (f16 scales become subnormal), ordinary, large, with an outlier, and all zeros.
TEST_P(CudaDequantBlocksType, QuantizedRowsDequantizeBitExactly) {
    const ggml_type t = GetParam().type;
    const int qk = dq::chunk_block_size(t);
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t n_blocks : {1, 3, 7}) {
        for (float scale : {1.0f, 1e-6f, 3e-3f, 250.0f, 6000.0f}) {
            for (int variant = 0; variant < 3; ++variant) {
                const int64_t n = n_blocks * qk;
                std::vector<float> src(static_cast<size_t>(n));
                for (auto& v : src) v = variant == 2 ? 0.0f : normal(rng) * scale;
                if (variant == 1) src[size_t(n / 2)] = 9.0f * scale;  // one outlier
                std::vector<uint8_t> row(row_size(t, n));
                quantize_row(t, src.data(), row.data(), n);
                expect_bit_exact(t, row, n_blocks,
                                 std::string(GetParam().name) + " blocks=" + std::to_string(n_blocks) +
                                     " scale=" + std::to_string(scale) + " variant=" + std::to_string(variant));
            }
        }
    }
}

// Offsets of the f16 fields (scales / mins) of a block, so random bytes can be made NaN-free.
std::vector<size_t> f16_fields(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0: return {offsetof(q4_0_block, d)};
        case ggml_type::q4_1: return {offsetof(q4_1_block, d), offsetof(q4_1_block, m)};
        case ggml_type::q5_0: return {offsetof(q5_0_block, d)};
        case ggml_type::q5_1: return {offsetof(q5_1_block, d), offsetof(q5_1_block, m)};
        case ggml_type::q8_0: return {offsetof(q8_0_block, d)};
        case ggml_type::q2_k: return {offsetof(q2_k_block, d), offsetof(q2_k_block, dmin)};
        case ggml_type::q3_k: return {offsetof(q3_k_block, d)};
        case ggml_type::q4_k: return {offsetof(q4_k_block, d), offsetof(q4_k_block, dmin)};
        case ggml_type::q5_k: return {offsetof(q5_k_block, d), offsetof(q5_k_block, dmin)};
        case ggml_type::q6_k: return {offsetof(q6_k_block, d)};
        default: return {};
    }
}

// Random bytes reach every bit pattern of the packed fields (6-bit scales, high-bit masks, all
// nibble values) that a quantizer may never emit; only the f16 scales are kept finite.
TEST_P(CudaDequantBlocksType, RandomBytesDequantizeBitExactly) {
    const ggml_type t = GetParam().type;
    const size_t block_bytes = type_traits(t).type_size;
    std::mt19937 rng(99);
    for (int64_t n_blocks : {1, 3, 7, 33}) {
        for (int rep = 0; rep < 20; ++rep) {
            std::vector<uint8_t> row(block_bytes * size_t(n_blocks));
            for (auto& b : row) b = static_cast<uint8_t>(rng());
            for (int64_t ib = 0; ib < n_blocks; ++ib) {
                for (size_t off : f16_fields(t)) {
                    uint8_t* p = row.data() + size_t(ib) * block_bytes + off;
                    uint16_t h;
                    std::memcpy(&h, p, 2);
                    if (((h >> 10) & 0x1f) == 0x1f) h = static_cast<uint16_t>(h & ~0x4000u);  // Inf/NaN -> finite
                    if (rep % 4 == 1) h = static_cast<uint16_t>(h & 0x83ffu);                   // subnormal scales
                    std::memcpy(p, &h, 2);
                }
            }
            expect_bit_exact(t, row, n_blocks,
                             std::string(GetParam().name) + " random blocks=" + std::to_string(n_blocks) +
                                 " rep=" + std::to_string(rep));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaDequantBlocksType, ::testing::ValuesIn(k_types),
                         [](const ::testing::TestParamInfo<type_case>& p) { return std::string(p.param.name); });

TEST(CudaDequantBlocks, PlainTypesMatchTheReference) {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 100.0f);
    for (int64_t n : {1, 37, 101, 293}) {
        std::vector<float> src(static_cast<size_t>(n));
        for (auto& v : src) v = normal(rng);
        src[0] = 1e-7f;  // an f16 subnormal
        for (ggml_type t : {ggml_type::f32, ggml_type::f16, ggml_type::bf16}) {
            std::vector<uint8_t> row(row_size(t, n));
            quantize_row(t, src.data(), row.data(), n);
            std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
            dequantize_row(t, row.data(), want.data(), n);
            for (int64_t i = 0; i < n; ++i) {
                if (t == ggml_type::f32) got[size_t(i)] = dq::plain_elem<ggml_type::f32>(row.data(), i);
                if (t == ggml_type::f16) got[size_t(i)] = dq::plain_elem<ggml_type::f16>(row.data(), i);
                if (t == ggml_type::bf16) got[size_t(i)] = dq::plain_elem<ggml_type::bf16>(row.data(), i);
            }
            EXPECT_EQ(first_bit_difference(got.data(), want.data(), want.size()), -1)
                << type_name(t) << " n=" << n;
        }
    }
}

TEST(CudaDequantBlocks, TypesWithoutChunkDequantizersAreRefused) {
    float out[dq::k_chunk];
    const uint8_t zeros[512] = {};
    for (ggml_type t : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q8_1, ggml_type::q8_k,
                        ggml_type::iq4_nl, ggml_type::iq2_xxs}) {
        EXPECT_FALSE(dq::dequant_chunk(t, zeros, 0, 0, out)) << type_name(t);
        EXPECT_EQ(dq::chunk_block_size(t), 0) << type_name(t);
    }
}

}  // namespace
}  // namespace edgellm
