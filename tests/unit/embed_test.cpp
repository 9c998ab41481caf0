// Encoder building blocks: LayerNorm and exact GELU kernels against closed forms on odd sizes,
// pooling (mean / CLS / last / none) and L2 normalisation, and the safetensors reader's checks.
#include "engine/embed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "convert/safetensors.h"
#include "core/error.h"
#include "kernels/kernels.h"
#include "test_util.h"

using namespace edgellm;

TEST(EncoderKernels, LayerNormMatchesTheDefinitionOnOddSizes) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.5f, 3.0f);
    for (int64_t n : {1, 3, 17, 33, 127, 129, 1023}) {
        const int64_t n_tok = 3;
        std::vector<float> x(n * n_tok), w(n), b(n), y(n * n_tok);
        for (auto& v : x) v = nd(rng);
        for (auto& v : w) v = nd(rng);
        for (auto& v : b) v = nd(rng);
        kernels::layer_norm(x.data(), w.data(), b.data(), y.data(), n, n_tok, 1e-5f);
        for (int64_t t = 0; t < n_tok; ++t) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < n; ++i) mean += x[t * n + i];
            mean /= double(n);
            for (int64_t i = 0; i < n; ++i) var += (x[t * n + i] - mean) * (x[t * n + i] - mean);
            var /= double(n);
            for (int64_t i = 0; i < n; ++i) {
                const double want = (x[t * n + i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i];
                ASSERT_NEAR(y[t * n + i], want, 1e-4 * (1 + std::fabs(want))) << "n=" << n;
                ASSERT_TRUE(std::isfinite(y[t * n + i]));
            }
        }
        // In place gives the same result; a null bias adds nothing.
        std::vector<float> x2 = x;
        kernels::layer_norm(x2.data(), w.data(), b.data(), x2.data(), n, n_tok, 1e-5f);
        EXPECT_EQ(x2, y);
        std::vector<float> y0(n * n_tok);
        kernels::layer_norm(x.data(), w.data(), nullptr, y0.data(), n, n_tok, 1e-5f);
        for (int64_t i = 0; i < n * n_tok; ++i)
            EXPECT_NEAR(y0[i] + b[i % n], y[i], 1e-4f * (1 + std::fabs(y[i])));
    }
}

TEST(EncoderKernels, GeluIsTheExactErfForm) {
    std::vector<float> x = {0.0f, 1.0f, -1.0f, 3.0f, -3.0f, 0.5f, -20.0f};
    kernels::gelu(x.data(), static_cast<int64_t>(x.size()));
    // 0.5 x (1 + erf(x / sqrt 2)) at the points, from the standard normal CDF tables.
    const std::vector<double> want = {0.0,
                                      0.8413447460685429,
                                      -0.15865525393145707,
                                      2.995950250329,
                                      -0.004049749671,
                                      0.34573123063700656,
                                      0.0};
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], want[i], 1e-6) << i;
}

TEST(Pooling, MeanClsLastNoneAndNormalisation) {
    // 3 tokens of 2 dims.
    const std::vector<float> h = {1, 2, 3, 4, 5, 12};
    std::vector<float> out;
    engine::pool_hidden(h.data(), 3, 2, engine::pooling::mean, out);
    EXPECT_EQ(out, (std::vector<float>{3, 6}));
    engine::pool_hidden(h.data(), 3, 2, engine::pooling::cls, out);
    EXPECT_EQ(out, (std::vector<float>{1, 2}));
    engine::pool_hidden(h.data(), 3, 2, engine::pooling::last, out);
    EXPECT_EQ(out, (std::vector<float>{5, 12}));
    engine::l2_normalize(out, 2);
    EXPECT_NEAR(out[0], 5.0 / 13.0, 1e-7);
    EXPECT_NEAR(out[1], 12.0 / 13.0, 1e-7);
    engine::pool_hidden(h.data(), 3, 2, engine::pooling::none, out);
    EXPECT_EQ(out, h);
    engine::l2_normalize(out, 2);  // each row on its own
    EXPECT_NEAR(out[4], 5.0 / 13.0, 1e-7);
    std::vector<float> zero = {0, 0};
    engine::l2_normalize(zero, 2);
    EXPECT_EQ(zero, (std::vector<float>{0, 0}));
    EXPECT_THROW(engine::pool_hidden(h.data(), 0, 2, engine::pooling::mean, out), error);
    EXPECT_EQ(engine::parse_pooling("cls"), engine::pooling::cls);
    EXPECT_FALSE(engine::parse_pooling("max").has_value());
}

TEST(Pooling, ModelDefaultFollowsMetadataThenCausality) {
    model::model_hparams hp;
    hp.pooling_type = 2;
    EXPECT_EQ(engine::model_pooling(hp), engine::pooling::cls);
    hp.pooling_type = -1;
    hp.causal = true;
    EXPECT_EQ(engine::model_pooling(hp), engine::pooling::last);
    hp.causal = false;
    EXPECT_EQ(engine::model_pooling(hp), engine::pooling::mean);
    hp.pooling_type = 4;
    EXPECT_THROW(engine::model_pooling(hp), usage_error);
}

namespace {

std::string write_st(const std::filesystem::path& p, const std::string& header,
                     const std::vector<uint8_t>& data, uint64_t claimed_len = 0) {
    std::ofstream f(p, std::ios::binary);
    uint64_t n = claimed_len ? claimed_len : header.size();
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header;
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    return p.string();
}

std::string error_of(const std::string& path) {
    try {
        convert::safetensors_set s;
        s.add_file(path);
    } catch (const error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Safetensors, ReadsTensorsAndRejectsMalformedFiles) {
    const auto dir = test::temp_dir("safetensors");
    std::vector<uint8_t> data(4 * 3 + 2 * 2);
    const float f[3] = {1.5f, -2.0f, 3.25f};
    std::memcpy(data.data(), f, 12);
    data[12] = 0x00, data[13] = 0x3c;  // f16 1.0
    data[14] = 0x80, data[15] = 0x3f;  // bf16 1.0
    const std::string ok = write_st(
        dir / "ok.safetensors",
        R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
        R"("h":{"dtype":"F16","shape":[1],"data_offsets":[12,14]},)"
        R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[14,16]}})",
        data);
    convert::safetensors_set s;
    s.add_file(ok);
    ASSERT_NE(s.find("a"), nullptr);
    EXPECT_EQ(convert::safetensors_set::to_f32(*s.find("a")),
              (std::vector<float>{1.5f, -2.0f, 3.25f}));
    EXPECT_EQ(convert::safetensors_set::to_f32(*s.find("h")), (std::vector<float>{1.0f}));
    EXPECT_EQ(convert::safetensors_set::to_f32(*s.find("b")), (std::vector<float>{1.0f}));
    EXPECT_EQ(s.find("b")->shape, (std::vector<int64_t>{1, 1}));

    EXPECT_NE(
        error_of(write_st(dir / "long.safetensors", "{}", {}, 1000)).find("runs past the end"),
        std::string::npos);
    EXPECT_NE(error_of(write_st(dir / "json.safetensors", "{not json", {})).find("not valid JSON"),
              std::string::npos);
    EXPECT_NE(error_of(write_st(dir / "off.safetensors",
                                R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,24]}})", data))
                  .find("outside"),
              std::string::npos);
    EXPECT_NE(error_of(write_st(dir / "size.safetensors",
                                R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", data))
                  .find("do not fill"),
              std::string::npos);
    EXPECT_NE(error_of(write_st(dir / "dtype.safetensors",
                                R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}})", data))
                  .find("unknown dtype"),
              std::string::npos);
    EXPECT_THROW(convert::safetensors_set::open_dir((dir / "missing").string()), error);
    std::filesystem::remove_all(dir);
}
