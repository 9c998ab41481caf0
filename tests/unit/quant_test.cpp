// Unit tests of the reference quantizers: exact fp16/bf16 conversion, round-trip error bounds
// per type on odd row lengths, zero rows, and the errors for bad lengths, NaN and unknown types.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm {
namespace {

TEST(fp16, every_half_survives_a_round_trip_through_float) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(static_cast<fp16_bits>(h));
        const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        if (is_nan) {
            EXPECT_TRUE(std::isnan(f));
            // Quiet NaNs keep their payload; signalling ones come back quiet.
            EXPECT_EQ(fp32_to_fp16(f) & 0x7e00, 0x7e00);
        } else {
            ASSERT_EQ(fp32_to_fp16(f), h) << "half 0x" << std::hex << h;
        }
    }
}

TEST(fp16, rounds_to_nearest_even_at_halfway_points) {
    // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to the even 1.0.
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
    // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
    EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
    // Just above halfway rounds up.
    EXPECT_EQ(fp32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
    // Subnormal halves: 2^-25 ties to zero, 3*2^-25 ties to the even 2*2^-24.
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
    EXPECT_EQ(fp32_to_fp16(3 * std::ldexp(1.0f, -25)), 0x0002);
    EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -24)), 0x8001);
    // Overflow: 65519 rounds down to the max half, 65520 rounds to infinity.
    EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
}

TEST(bf16, rounds_to_nearest_even_and_keeps_nan_quiet) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, even stays
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
    for (uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;  // NaNs
        ASSERT_EQ(fp32_to_bf16(bf16_to_fp32(static_cast<bf16_bits>(h))), h);
    }
}

struct round_trip_case {
    ggml_type type;
    double max_rel_rms;  // bound on ||dequant(quant(x)) - x|| / ||x|| for Gaussian rows
};

class quant_round_trip : public ::testing::TestWithParam<round_trip_case> {};

std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto& v : x) v = dist(rng);
    return x;
}

TEST_P(quant_round_trip, error_is_within_the_formats_bound_on_odd_block_counts) {
    const auto [type, bound] = GetParam();
    const int64_t block = type_traits(type).block_size == 1 ? 1 : type_traits(type).block_size;
    for (int64_t n_blocks : {1, 3, 17, 33, 127}) {
        const int64_t n = n_blocks * block * (block == 1 ? 129 : 1);
        const auto x = gaussian(n, static_cast<uint32_t>(n_blocks * 31 + static_cast<int>(type)), 0.02f);
        std::vector<uint8_t> q(row_size(type, n) + 16, 0xAB);  // guard bytes after the row
        EXPECT_EQ(quantize_row(type, x.data(), q.data(), n), row_size(type, n));
        for (size_t g = row_size(type, n); g < q.size(); ++g) ASSERT_EQ(q[g], 0xAB) << "overrun";
        std::vector<float> y(static_cast<size_t>(n));
        dequantize_row(type, q.data(), y.data(), n);
        double err2 = 0, ref2 = 0;
        for (int64_t i = 0; i < n; ++i) {
            ASSERT_TRUE(std::isfinite(y[i]));
            err2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
            ref2 += double(x[i]) * x[i];
        }
        EXPECT_LT(std::sqrt(err2 / ref2), bound) << type_name(type) << " with " << n_blocks << " blocks";
    }
}

TEST_P(quant_round_trip, zero_rows_stay_exactly_zero) {
    const auto type = GetParam().type;
    const int64_t n = 3 * std::max<int64_t>(32, type_traits(type).block_size);
    std::vector<float> x(static_cast<size_t>(n), 0.0f), y(static_cast<size_t>(n), 1.0f);
    std::vector<uint8_t> q(row_size(type, n));
    quantize_row(type, x.data(), q.data(), n);
    dequantize_row(type, q.data(), y.data(), n);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(type);
}

TEST_P(quant_round_trip, empty_rows_are_fine) {
    const auto type = GetParam().type;
    float f = 0;
    uint8_t b = 0;
    EXPECT_EQ(quantize_row(type, &f, &b, 0), 0u);
    EXPECT_NO_THROW(dequantize_row(type, &b, &f, 0));
}

INSTANTIATE_TEST_SUITE_P(all_types, quant_round_trip,
                         ::testing::Values(round_trip_case{ggml_type::f32, 1e-9}, round_trip_case{ggml_type::f16, 1e-3},
                                           round_trip_case{ggml_type::bf16, 5e-3}, round_trip_case{ggml_type::q8_0, 0.01},
                                           round_trip_case{ggml_type::q8_1, 0.01}, round_trip_case{ggml_type::q8_k, 0.01},
                                           round_trip_case{ggml_type::q5_0, 0.06}, round_trip_case{ggml_type::q5_1, 0.05},
                                           round_trip_case{ggml_type::q4_0, 0.12}, round_trip_case{ggml_type::q4_1, 0.10},
                                           round_trip_case{ggml_type::q6_k, 0.03}, round_trip_case{ggml_type::q5_k, 0.06},
                                           round_trip_case{ggml_type::q4_k, 0.12}, round_trip_case{ggml_type::q3_k, 0.25},
                                           round_trip_case{ggml_type::q2_k, 0.45}),
                         [](const auto& info) { return std::string(type_name(info.param.type)); });

TEST(quant, more_bits_means_less_error) {
    const int64_t n = 256 * 8;
    const auto x = gaussian(n, 7, 1.0f);
    auto rms = [&](ggml_type t) {
        std::vector<uint8_t> q(row_size(t, n));
        std::vector<float> y(static_cast<size_t>(n));
        quantize_row(t, x.data(), q.data(), n);
        dequantize_row(t, q.data(), y.data(), n);
        double e = 0;
        for (int64_t i = 0; i < n; ++i) e += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        return std::sqrt(e / n);
    };
    EXPECT_LT(rms(ggml_type::q3_k), rms(ggml_type::q2_k));
    EXPECT_LT(rms(ggml_type::q4_k), rms(ggml_type::q3_k));
    EXPECT_LT(rms(ggml_type::q5_k), rms(ggml_type::q4_k));
    EXPECT_LT(rms(ggml_type::q6_k), rms(ggml_type::q5_k));
    EXPECT_LT(rms(ggml_type::q8_0), rms(ggml_type::q6_k));
    EXPECT_LT(rms(ggml_type::q5_0), rms(ggml_type::q4_0));
}

TEST(quant, q8_1_stores_the_scaled_sum_and_q8_k_the_group_sums) {
    const auto x = gaussian(256, 11, 1.0f);
    q8_1_block b1[8];
    quantize_row_q8_1(x.data(), b1, 256);
    for (const auto& b : b1) {
        int sum = 0;
        for (int8_t q : b.qs) sum += q;
        // ggml multiplies by the unrounded float d, so compare with the f16 d within f16 precision.
        const float expect = static_cast<float>(sum) * fp16_to_fp32(b.d);
        EXPECT_NEAR(fp16_to_fp32(b.s), expect, std::fabs(expect) * 2e-3f + 1e-6f);
    }
    q8_k_block bk;
    quantize_row_q8_k(x.data(), &bk, 256);
    for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += bk.qs[g * 16 + i];
        EXPECT_EQ(bk.bsums[g], sum);
    }
}

TEST(quant, q4_0_maps_the_largest_magnitude_to_minus_eight) {
    // ggml's choice: d = max / -8 so the extreme value is represented exactly.
    std::vector<float> x(32, 0.25f);
    x[5] = -3.0f;
    q4_0_block b;
    quantize_row_q4_0(x.data(), &b, 32);
    float y[32];
    dequantize_row_q4_0(&b, y, 32);
    EXPECT_EQ(y[5], -3.0f);
    EXPECT_NEAR(y[0], 0.25f, 0.375f / 2 + 1e-6f);
}

TEST(quant, rows_that_are_not_whole_blocks_are_rejected) {
    std::vector<float> x(300);
    std::vector<uint8_t> q(4096);
    EXPECT_THROW(quantize_row(ggml_type::q4_0, x.data(), q.data(), 33), error);
    EXPECT_THROW(quantize_row(ggml_type::q4_k, x.data(), q.data(), 300), error);
    EXPECT_THROW(dequantize_row(ggml_type::q6_k, q.data(), x.data(), 255), error);
    EXPECT_THROW(dequantize_row(ggml_type::f16, q.data(), x.data(), -1), error);
    try {
        dequantize_row(ggml_type::q8_0, q.data(), x.data(), 31);
        FAIL();
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("Q8_0"), std::string::npos) << e.what();
    }
}

TEST(quant, unsupported_types_name_themselves) {
    std::vector<float> x(256);
    std::vector<uint8_t> q(4096);
    try {
        quantize_row(ggml_type::iq2_xxs, x.data(), q.data(), 256);
        FAIL();
    } catch (const error& e) {
        EXPECT_STREQ(e.what(), "quantization to IQ2_XXS not implemented");
    }
    try {
        dequantize_row(ggml_type::iq4_nl, q.data(), x.data(), 32);
        FAIL();
    } catch (const error& e) {
        EXPECT_STREQ(e.what(), "dequantization of IQ4_NL not implemented");
    }
    EXPECT_FALSE(can_quantize(ggml_type::i32));
    EXPECT_TRUE(can_dequantize(ggml_type::q3_k));
}

TEST(quant, nan_is_kept_by_float_types_and_rejected_by_block_types) {
    std::vector<float> x(64, 1.0f);
    x[40] = std::numeric_limits<float>::quiet_NaN();
    std::vector<uint8_t> q(4096);
    std::vector<float> y(64);
    quantize_row(ggml_type::f16, x.data(), q.data(), 64);
    dequantize_row(ggml_type::f16, q.data(), y.data(), 64);
    EXPECT_TRUE(std::isnan(y[40]));
    EXPECT_EQ(y[39], 1.0f);
    try {
        quantize_row(ggml_type::q8_0, x.data(), q.data(), 64);
        FAIL();
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("element 40"), std::string::npos) << e.what();
    }
    std::vector<float> big(256, 0.5f);
    big[255] = -std::numeric_limits<float>::infinity();
    EXPECT_THROW(quantize_row(ggml_type::q4_k, big.data(), q.data(), 256), error);
}

}  // namespace
}  // namespace edgellm
