// Every CUDA op (src/kernels/cuda/cuda_ops.h) and every weight type against the CPU reference
// kernels (kernels::ref), test-backend-ops style: odd shapes, guard zones around device outputs,
// NaN/Inf checks, then normalized mean squared error. Needs a CUDA device: without one the binary
// prints why and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE in tests/CMakeLists).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm {
namespace {

namespace cu = kernels::cuda;
using kernels::rope_mode;

// Expected errors (f32 on the GPU vs f64 in the reference): ~1e-13 NMSE for the element ops and
// attention, ~1e-11 for mul_mat (f32 sums over up to 1792 products). The bounds leave orders of
// magnitude of room for summation order and still catch any real mistake (a wrong index or
// scale gives errors of order 1e-3 .. 1).
constexpr double k_op_tol = 1e-8;
constexpr double k_mul_mat_tol = 1e-8;
// The int8 path rounds activations to 8 bits per 32 (as the CPU's Q4_0/Q8_0 kernels do, see
// docs/kernels.md): noise ~3e-5, same bound as tests/kernels/mul_mat_test.cpp.
constexpr double k_int8_tol = 2e-4;

std::vector<float> random_floats(size_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

std::vector<uint8_t> random_weights(ggml_type t, int64_t n_rows, int64_t n_cols, uint32_t seed) {
    const auto src = random_floats(size_t(n_rows * n_cols), seed);
    const size_t rb = row_size(t, n_cols);
    std::vector<uint8_t> w(rb * size_t(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) quantize_row(t, src.data() + r * n_cols, w.data() + size_t(r) * rb, n_cols);
    return w;
}

// sum((a-b)^2) / sum(b^2)
double nmse(const float* a, const float* ref, size_t n) {
    double err = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; ++i) {
        err += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
        norm += double(ref[i]) * ref[i];
    }
    return norm > 0.0 ? err / norm : err;
}

bool all_finite(const std::vector<float>& a) {
    for (float x : a)
        if (!std::isfinite(x)) return false;
    return true;
}

template <class T>
cu::device_buffer to_device(const std::vector<T>& v) {
    cu::device_buffer b(v.size() * sizeof(T));
    b.upload_from(v.data(), v.size() * sizeof(T));
    return b;
}

// A device float buffer with guard zones before and after, filled with a NaN marker no kernel
// writes; read() synchronizes, downloads, and checks the guards.
class guarded_output {
public:
    static constexpr size_t k_guard = 64;
    static constexpr uint32_t k_marker = 0x7fa5a5a5u;

    explicit guarded_output(size_t n) : n_(n), buf_((n + 2 * k_guard) * sizeof(float)) {
        std::vector<uint32_t> fill(n + 2 * k_guard, k_marker);
        buf_.upload_from(fill.data(), fill.size() * sizeof(uint32_t));
    }
    float* data() const { return buf_.as<float>() + k_guard; }
    // Uploads initial contents (for in-place ops).
    void set(const std::vector<float>& v) { cu::upload(data(), v.data(), v.size() * sizeof(float)); }

    std::vector<float> read(bool* guards_ok) const {
        cu::synchronize();
        std::vector<uint32_t> all(n_ + 2 * k_guard);
        buf_.download_to(all.data(), all.size() * sizeof(uint32_t));
        *guards_ok = true;
        for (size_t i = 0; i < all.size(); ++i)
            if ((i < k_guard || i >= k_guard + n_) && all[i] != k_marker) *guards_ok = false;
        std::vector<float> out(n_);
        std::memcpy(out.data(), all.data() + k_guard, n_ * sizeof(float));
        return out;
    }

private:
    size_t n_;
    cu::device_buffer buf_;
};

// Checks a downloaded result the way every op test does: guards, NaN/Inf first, then NMSE.
void expect_close(const guarded_output& out, const std::vector<float>& ref, double tol) {
    bool guards_ok = false;
    const auto got = out.read(&guards_ok);
    EXPECT_TRUE(guards_ok) << "the kernel wrote outside its output";
    ASSERT_TRUE(all_finite(got)) << "NaN or Inf in the output";
    EXPECT_LE(nmse(got.data(), ref.data(), ref.size()), tol);
}

// ---------------------------------------------------------------- runtime

TEST(CudaRuntime, DeviceHasANameAndMemory) {
    EXPECT_TRUE(cu::available());
    EXPECT_FALSE(cu::device_name().empty());
    EXPECT_GT(cu::total_memory(), size_t{0});
    EXPECT_LE(cu::free_memory(), cu::total_memory());
    std::printf("device: %s, %zu MiB free of %zu MiB\n", cu::device_name().c_str(), cu::free_memory() >> 20,
                cu::total_memory() >> 20);
}

TEST(CudaRuntime, UploadDownloadAndCopyRoundTrip) {
    const auto v = random_floats(1001, 1);
    cu::device_buffer a(v.size() * sizeof(float)), b(v.size() * sizeof(float));
    a.upload_from(v.data(), v.size() * sizeof(float));
    cu::copy(b.data(), a.data(), v.size() * sizeof(float));
    std::vector<float> back(v.size());
    b.download_to(back.data(), back.size() * sizeof(float));
    EXPECT_EQ(std::memcmp(back.data(), v.data(), v.size() * sizeof(float)), 0);
    cu::fill_bytes(b.data(), 0, b.size());
    b.download_to(back.data(), back.size() * sizeof(float));
    for (float x : back) ASSERT_EQ(x, 0.0f);
    cu::device_buffer moved = std::move(a);
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_NE(moved.data(), nullptr);
    EXPECT_THROW(moved.upload_from(v.data(), moved.size() + 4), error);
}

TEST(CudaRuntime, ImpossibleAllocationThrowsWithTheSize) {
    try {
        cu::alloc(size_t{1} << 60);
        FAIL() << "allocating 2^60 bytes succeeded";
    } catch (const error& e) {
        EXPECT_NE(std::string(e.what()).find("1152921504606846976 bytes"), std::string::npos) << e.what();
    }
    cu::synchronize();  // the failure is not sticky
}

// ---------------------------------------------------------------- mul_mat

struct type_case {
    ggml_type type;
    const char* name;
};

const type_case k_weight_types[] = {
    {ggml_type::f32, "F32"},   {ggml_type::f16, "F16"},   {ggml_type::bf16, "BF16"}, {ggml_type::q4_0, "Q4_0"},
    {ggml_type::q4_1, "Q4_1"}, {ggml_type::q5_0, "Q5_0"}, {ggml_type::q5_1, "Q5_1"}, {ggml_type::q8_0, "Q8_0"},
    {ggml_type::q2_k, "Q2_K"}, {ggml_type::q3_k, "Q3_K"}, {ggml_type::q4_k, "Q4_K"}, {ggml_type::q5_k, "Q5_K"},
    {ggml_type::q6_k, "Q6_K"},
};

std::string type_case_name(const ::testing::TestParamInfo<type_case>& p) { return p.param.name; }
void PrintTo(const type_case& c, std::ostream* os) { *os << c.name; }

// Column counts: 1, 3 and 7 blocks for the block types; odd counts for the plain types, so the
// GEMM's k tail and the decode lanes' tails run.
std::vector<int64_t> test_cols(ggml_type t) {
    const int64_t bs = type_traits(t).block_size;
    if (bs == 1) return {37, 101, 293};
    return {bs, 3 * bs, 7 * bs};
}

// sum over outputs of sum_c (w[r][c] x[t][c])^2: the scale f32 rounding and activation
// quantization noise follow, which a single cancelling dot product cannot shrink.
double product_norm(ggml_type t, const std::vector<uint8_t>& w, int64_t n_rows, int64_t n_cols,
                    const std::vector<float>& x, int64_t n_tokens) {
    std::vector<float> row(static_cast<size_t>(n_cols));
    double s = 0.0;
    for (int64_t r = 0; r < n_rows; ++r) {
        dequantize_row(t, w.data() + size_t(r) * row_size(t, n_cols), row.data(), n_cols);
        for (int64_t tk = 0; tk < n_tokens; ++tk)
            for (int64_t c = 0; c < n_cols; ++c) {
                const double p = double(row[size_t(c)]) * x[size_t(tk * n_cols + c)];
                s += p * p;
            }
    }
    return s;
}

void expect_mul_mat_close(const std::vector<float>& got, const std::vector<float>& ref, double pnorm, double tol) {
    ASSERT_TRUE(all_finite(got)) << "NaN or Inf in the output";
    double err = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) err += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    EXPECT_LE(err / pnorm, tol) << "error normalized by the squared products";
    if (ref.size() >= 32) {
        EXPECT_LE(nmse(got.data(), ref.data(), ref.size()), tol);
    }
}

class CudaMulMat : public ::testing::TestWithParam<type_case> {};

TEST_P(CudaMulMat, MatchesReferenceInDecodeAndGemm) {
    const ggml_type t = GetParam().type;
    ASSERT_TRUE(cu::supports(t));
    uint32_t seed = 10;
    for (int64_t n_rows : {1, 7, 33, 257}) {
        for (int64_t n_cols : test_cols(t)) {
            const auto w = random_weights(t, n_rows, n_cols, seed++);
            const auto dw = to_device(w);
            for (int64_t n_tokens : {1, 3, 8, 17, 70}) {
                SCOPED_TRACE("n_rows=" + std::to_string(n_rows) + " n_cols=" + std::to_string(n_cols) +
                             " n_tokens=" + std::to_string(n_tokens) +
                             (n_tokens <= cu::k_mul_mat_vec_max_tokens ? " (decode)" : " (gemm)"));
                const auto x = random_floats(size_t(n_tokens * n_cols), seed++);
                std::vector<float> ref(size_t(n_tokens * n_rows));
                kernels::ref::mul_mat(t, w.data(), n_rows, n_cols, x.data(), n_tokens, ref.data());
                const auto dx = to_device(x);
                guarded_output y(ref.size());
                cu::mul_mat(t, dw.data(), n_rows, n_cols, dx.as<float>(), n_tokens, y.data());
                bool guards_ok = false;
                const auto got = y.read(&guards_ok);
                EXPECT_TRUE(guards_ok) << "mul_mat wrote outside y";
                expect_mul_mat_close(got, ref, product_norm(t, w, n_rows, n_cols, x, n_tokens), k_mul_mat_tol);
            }
        }
    }
}

// A token count that is not a multiple of the 64-token tile, with rows not a multiple of 64,
// over a wide row: the GEMM's edge tiles and many k steps.
TEST_P(CudaMulMat, GemmEdgeTilesOnAWideMatrix) {
    const ggml_type t = GetParam().type;
    const int64_t n_rows = 130, n_tokens = 129;
    const int64_t n_cols = type_traits(t).block_size == 1 ? 1000 : 9 * 256;
    const auto w = random_weights(t, n_rows, n_cols, 77);
    const auto x = random_floats(size_t(n_tokens * n_cols), 78);
    std::vector<float> ref(size_t(n_tokens * n_rows));
    kernels::ref::mul_mat(t, w.data(), n_rows, n_cols, x.data(), n_tokens, ref.data());
    const auto dw = to_device(w);
    const auto dx = to_device(x);
    guarded_output y(ref.size());
    cu::mul_mat(t, dw.data(), n_rows, n_cols, dx.as<float>(), n_tokens, y.data());
    bool guards_ok = false;
    const auto got = y.read(&guards_ok);
    EXPECT_TRUE(guards_ok);
    expect_mul_mat_close(got, ref, product_norm(t, w, n_rows, n_cols, x, n_tokens), k_mul_mat_tol);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaMulMat, ::testing::ValuesIn(k_weight_types), type_case_name);

TEST(CudaMulMatErrors, UnsupportedTypesAndShapesAreRefused) {
    for (ggml_type t : {ggml_type::q8_1, ggml_type::q8_k, ggml_type::iq4_nl, ggml_type::i32}) {
        EXPECT_FALSE(cu::supports(t));
        EXPECT_THROW(cu::mul_mat(t, nullptr, 1, 256, nullptr, 1, nullptr), error);
    }
    EXPECT_THROW(cu::mul_mat(ggml_type::q4_0, nullptr, 1, 48, nullptr, 1, nullptr), error);  // 1.5 blocks
    EXPECT_THROW(cu::mul_mat(ggml_type::q4_k, nullptr, 1, 128, nullptr, 1, nullptr), error);
}

// ---------------------------------------------------------------- int8 decode path

class CudaMulMatInt8 : public ::testing::TestWithParam<type_case> {};

TEST_P(CudaMulMatInt8, MatchesReferenceAndTheF32Path) {
    const ggml_type t = GetParam().type;
    ASSERT_TRUE(cu::supports_int8(t));
    uint32_t seed = 300;
    for (int64_t n_rows : {1, 7, 33, 257}) {
        for (int64_t n_cols : {32, 96, 224, 4096}) {
            const auto w = random_weights(t, n_rows, n_cols, seed++);
            const auto dw = to_device(w);
            for (int64_t n_tokens : {1, 3, 8}) {
                SCOPED_TRACE("n_rows=" + std::to_string(n_rows) + " n_cols=" + std::to_string(n_cols) +
                             " n_tokens=" + std::to_string(n_tokens));
                const auto x = random_floats(size_t(n_tokens * n_cols), seed++);
                std::vector<float> ref(size_t(n_tokens * n_rows));
                kernels::ref::mul_mat(t, w.data(), n_rows, n_cols, x.data(), n_tokens, ref.data());
                const auto dx = to_device(x);
                cu::device_buffer scratch(cu::mul_mat_int8_scratch_bytes(n_cols, n_tokens));
                guarded_output y(ref.size()), y_f32(ref.size());
                cu::mul_mat_int8(t, dw.data(), n_rows, n_cols, dx.as<float>(), n_tokens, y.data(), scratch.data());
                cu::mul_mat(t, dw.data(), n_rows, n_cols, dx.as<float>(), n_tokens, y_f32.data());
                bool guards_ok = false;
                const auto got = y.read(&guards_ok);
                EXPECT_TRUE(guards_ok) << "mul_mat_int8 wrote outside y";
                const auto got_f32 = y_f32.read(&guards_ok);
                const double pnorm = product_norm(t, w, n_rows, n_cols, x, n_tokens);
                expect_mul_mat_close(got, ref, pnorm, k_int8_tol);
                expect_mul_mat_close(got, got_f32, pnorm, k_int8_tol);
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Int8Types, CudaMulMatInt8,
                         ::testing::Values(type_case{ggml_type::q4_0, "Q4_0"}, type_case{ggml_type::q8_0, "Q8_0"}),
                         type_case_name);

TEST(CudaMulMatInt8Errors, OtherTypesAndTooManyTokensAreRefused) {
    EXPECT_FALSE(cu::supports_int8(ggml_type::q4_1));
    EXPECT_THROW(cu::mul_mat_int8(ggml_type::q4_k, nullptr, 1, 256, nullptr, 1, nullptr, nullptr), error);
    EXPECT_THROW(cu::mul_mat_int8(ggml_type::q4_0, nullptr, 1, 32, nullptr, 9, nullptr, nullptr), error);
}

// ---------------------------------------------------------------- get_row

class CudaGetRow : public ::testing::TestWithParam<type_case> {};

// The GPU dequantizes with dequant_blocks.h, rounding like the reference (no FMA contraction),
// so embedding rows must come back bit for bit.
TEST_P(CudaGetRow, RowsMatchTheReferenceBitForBit) {
    const ggml_type t = GetParam().type;
    const int64_t n_rows = 9;
    for (int64_t n_cols : test_cols(t)) {
        SCOPED_TRACE("n_cols=" + std::to_string(n_cols));
        const auto w = random_weights(t, n_rows, n_cols, 500 + uint32_t(n_cols));
        const std::vector<int32_t> rows = {5, 0, 8, 5, 2, 7, 1};
        const auto dw = to_device(w);
        const auto drows = to_device(rows);
        guarded_output out(rows.size() * size_t(n_cols));
        cu::get_row(t, dw.data(), n_cols, drows.as<int32_t>(), int64_t(rows.size()), out.data());
        bool guards_ok = false;
        const auto got = out.read(&guards_ok);
        EXPECT_TRUE(guards_ok);
        std::vector<float> want(static_cast<size_t>(n_cols));
        for (size_t i = 0; i < rows.size(); ++i) {
            kernels::ref::get_row(t, w.data(), n_cols, rows[i], want.data());
            EXPECT_EQ(std::memcmp(got.data() + i * size_t(n_cols), want.data(), want.size() * sizeof(float)), 0)
                << "output row " << i << " (weight row " << rows[i] << ")";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaGetRow, ::testing::ValuesIn(k_weight_types), type_case_name);

// ---------------------------------------------------------------- element-wise ops

TEST(CudaOps, RmsNormMatchesReference) {
    for (int64_t n : {1, 7, 33, 4099}) {
        for (int64_t n_tokens : {1, 3, 17}) {
            SCOPED_TRACE("n=" + std::to_string(n) + " n_tokens=" + std::to_string(n_tokens));
            const auto x = random_floats(size_t(n * n_tokens), 1, 3.0f);
            const auto wgt = random_floats(size_t(n), 2);
            std::vector<float> ref(x.size());
            kernels::ref::rms_norm(x.data(), wgt.data(), ref.data(), n, n_tokens, 1e-5f);
            const auto dx = to_device(x);
            const auto dw = to_device(wgt);
            guarded_output y(ref.size());
            cu::rms_norm(dx.as<float>(), dw.as<float>(), y.data(), n, n_tokens, 1e-5f);
            expect_close(y, ref, k_op_tol);
        }
    }
}

TEST(CudaOps, RopeMatchesReferenceInBothModes) {
    const std::vector<int32_t> positions = {0, 1, 17, 1000, 4095, 7, 32767};
    const int64_t n_tokens = int64_t(positions.size()), n_heads = 3;
    for (rope_mode mode : {rope_mode::normal, rope_mode::neox}) {
        for (int64_t head_dim : {64, 128, 80}) {
            for (int64_t n_rot : {head_dim, head_dim / 2}) {
                for (bool factors : {false, true}) {
                    SCOPED_TRACE(std::string(mode == rope_mode::neox ? "neox" : "normal") +
                                 " head_dim=" + std::to_string(head_dim) + " n_rot=" + std::to_string(n_rot) +
                                 (factors ? " freq_factors" : ""));
                    const auto x = random_floats(size_t(n_tokens * n_heads * head_dim), 3);
                    std::vector<float> ff(size_t(n_rot / 2));
                    for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + 0.37f * float(i % 5);
                    auto ref = x;
                    for (int64_t t = 0; t < n_tokens; ++t)
                        kernels::ref::rope(ref.data() + t * n_heads * head_dim, n_heads, head_dim, n_rot, positions[size_t(t)],
                                           10000.0f, 0.5f, factors ? ff.data() : nullptr, mode);
                    const auto dpos = to_device(positions);
                    const auto dff = to_device(ff);
                    guarded_output y(x.size());
                    y.set(x);
                    cu::rope(y.data(), n_tokens, n_heads, head_dim, n_rot, dpos.as<int32_t>(), 10000.0f, 0.5f,
                             factors ? dff.as<float>() : nullptr, mode);
                    expect_close(y, ref, k_op_tol);
                }
            }
        }
    }
    EXPECT_THROW(cu::rope(nullptr, 1, 1, 64, 63, nullptr, 1e4f, 1.0f, nullptr, rope_mode::normal), error);
}

TEST(CudaOps, SoftmaxMatchesReferenceAndSumsToOne) {
    for (int64_t n : {1, 5, 129, 1000, 32001}) {
        for (int64_t n_rows : {1, 3}) {
            SCOPED_TRACE("n=" + std::to_string(n) + " n_rows=" + std::to_string(n_rows));
            auto x = random_floats(size_t(n * n_rows), 4, 10.0f);
            x[0] = 80.0f;  // large logits must not overflow
            auto ref = x;
            for (int64_t r = 0; r < n_rows; ++r) kernels::ref::softmax(ref.data() + r * n, n);
            guarded_output y(x.size());
            y.set(x);
            cu::softmax(y.data(), n_rows, n);
            expect_close(y, ref, k_op_tol);
            bool guards_ok = false;
            const auto got = y.read(&guards_ok);
            for (int64_t r = 0; r < n_rows; ++r) {
                double s = 0.0;
                for (int64_t i = 0; i < n; ++i) s += got[size_t(r * n + i)];
                EXPECT_NEAR(s, 1.0, 1e-5) << "row " << r;
            }
        }
    }
}

TEST(CudaOps, SwigluAndAddMatchReference) {
    for (int64_t n : {1, 7, 1000, 1000003}) {
        SCOPED_TRACE("n=" + std::to_string(n));
        auto g = random_floats(size_t(n), 5, 4.0f);
        if (n > 1) g[1] = -100.0f;  // exp(-g) overflows f32: silu gives -0 (the f64 reference -4e-42)
        const auto u = random_floats(size_t(n), 6);
        std::vector<float> ref(static_cast<size_t>(n));
        kernels::ref::swiglu(g.data(), u.data(), ref.data(), n);
        const auto dg = to_device(g);
        const auto du = to_device(u);
        guarded_output y(ref.size());
        cu::swiglu(dg.as<float>(), du.as<float>(), y.data(), n);
        expect_close(y, ref, k_op_tol);

        auto sum_ref = g;
        kernels::ref::add(sum_ref.data(), u.data(), n);
        guarded_output s(sum_ref.size());
        s.set(g);
        cu::add(s.data(), du.as<float>(), n);
        bool guards_ok = false;
        const auto got = s.read(&guards_ok);
        EXPECT_TRUE(guards_ok);
        EXPECT_EQ(std::memcmp(got.data(), sum_ref.data(), got.size() * sizeof(float)), 0) << "add is exact";
    }
}

// ---------------------------------------------------------------- KV cache and attention

TEST(CudaKv, StoreKvWritesTheGivenRowsAndNothingElse) {
    const int64_t kv_dim = 2 * 64 + 3, n_rows = 10;
    const std::vector<int32_t> rows = {3, 0, 9, 4, 7};
    const int64_t n_tokens = int64_t(rows.size());
    for (ggml_type t : {ggml_type::f32, ggml_type::f16}) {
        SCOPED_TRACE(std::string(type_name(t)));
        const size_t elem = t == ggml_type::f16 ? 2 : 4;
        auto k = random_floats(size_t(n_tokens * kv_dim), 7);
        const auto v = random_floats(size_t(n_tokens * kv_dim), 8);
        k[1] = 1e-6f;    // an f16 subnormal
        k[2] = 70000.f;  // overflows f16 to Inf
        const std::vector<uint8_t> init(size_t(n_rows * kv_dim) * elem, 0xAB);
        auto dk_cache = to_device(init);
        auto dv_cache = to_device(init);
        const auto dk = to_device(k);
        const auto dv = to_device(v);
        const auto drows = to_device(rows);
        cu::store_kv(dk.as<float>(), dv.as<float>(), n_tokens, kv_dim, dk_cache.data(), dv_cache.data(), t,
                     drows.as<int32_t>());
        cu::synchronize();
        std::vector<uint8_t> want_k = init, want_v = init;
        for (int64_t i = 0; i < n_tokens; ++i)
            for (int64_t c = 0; c < kv_dim; ++c) {
                const size_t src = size_t(i * kv_dim + c), dst = size_t(rows[size_t(i)] * kv_dim + c) * elem;
                if (t == ggml_type::f16) {
                    const uint16_t hk = fp32_to_fp16(k[src]), hv = fp32_to_fp16(v[src]);
                    std::memcpy(&want_k[dst], &hk, 2);
                    std::memcpy(&want_v[dst], &hv, 2);
                } else {
                    std::memcpy(&want_k[dst], &k[src], 4);
                    std::memcpy(&want_v[dst], &v[src], 4);
                }
            }
        std::vector<uint8_t> got_k(init.size()), got_v(init.size());
        dk_cache.download_to(got_k.data(), got_k.size());
        dv_cache.download_to(got_v.data(), got_v.size());
        EXPECT_EQ(got_k, want_k);
        EXPECT_EQ(got_v, want_v);
    }
    EXPECT_THROW(cu::store_kv(nullptr, nullptr, 1, 64, nullptr, nullptr, ggml_type::q8_0, nullptr), error);
}

struct attention_case {
    ggml_type kv_type;
    int64_t head_dim;
    int64_t n_head, n_head_kv;
};

std::string attention_case_name(const ::testing::TestParamInfo<attention_case>& p) {
    return std::string(type_name(p.param.kv_type)) + "_d" + std::to_string(p.param.head_dim) + "_h" +
           std::to_string(p.param.n_head) + "_kv" + std::to_string(p.param.n_head_kv);
}

void PrintTo(const attention_case& c, std::ostream* os) {
    *os << type_name(c.kv_type) << " head_dim=" << c.head_dim << " n_head=" << c.n_head << " n_head_kv=" << c.n_head_kv;
}

class CudaAttention : public ::testing::TestWithParam<attention_case> {};

// Tokens attend to different prefixes of the cache (n_kv[t] = base + t, as in a causal batch),
// covering one key, fewer than a tile, just past a tile, and many tiles.
TEST_P(CudaAttention, MatchesReferencePerToken) {
    const auto [kv_type, head_dim, n_head, n_head_kv] = GetParam();
    const int64_t row_elems = n_head_kv * head_dim;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    for (int64_t base : {1, 5, 129, 700}) {
        for (int64_t n_tokens : {1, 3}) {
            SCOPED_TRACE("n_kv=" + std::to_string(base) + ".. n_tokens=" + std::to_string(n_tokens));
            const int64_t cache_rows = base + n_tokens;
            const auto k = random_floats(size_t(cache_rows * row_elems), 11 + uint32_t(base));
            const auto v = random_floats(size_t(cache_rows * row_elems), 12 + uint32_t(base));
            const auto q = random_floats(size_t(n_tokens * n_head * head_dim), 13, 2.0f);
            // The cache as stored: f32 as is, or rounded to f16 (the reference reads the same bits).
            std::vector<uint8_t> kc, vc;
            if (kv_type == ggml_type::f16) {
                kc.resize(k.size() * 2);
                vc.resize(v.size() * 2);
                quantize_row(ggml_type::f16, k.data(), kc.data(), int64_t(k.size()));
                quantize_row(ggml_type::f16, v.data(), vc.data(), int64_t(v.size()));
            } else {
                kc.resize(k.size() * 4);
                vc.resize(v.size() * 4);
                std::memcpy(kc.data(), k.data(), kc.size());
                std::memcpy(vc.data(), v.data(), vc.size());
            }
            std::vector<int32_t> n_kv(static_cast<size_t>(n_tokens));
            for (int64_t t = 0; t < n_tokens; ++t) n_kv[size_t(t)] = int32_t(base + t);

            std::vector<float> ref(size_t(n_tokens * n_head * head_dim));
            std::vector<float> scratch(static_cast<size_t>(cache_rows));
            const auto view = kernels::kv_view::contiguous(kc.data(), vc.data(), kv_type, row_elems);
            for (int64_t t = 0; t < n_tokens; ++t)
                kernels::ref::attention(q.data() + t * n_head * head_dim, view, n_kv[size_t(t)], n_head, n_head_kv,
                                        head_dim, scale, ref.data() + t * n_head * head_dim, scratch.data());

            const auto dq_ = to_device(q);
            const auto dk = to_device(kc);
            const auto dv = to_device(vc);
            const auto dn = to_device(n_kv);
            guarded_output out(ref.size());
            cu::attention(dq_.as<float>(), dk.data(), dv.data(), kv_type, n_head, n_head_kv, head_dim,
                          dn.as<int32_t>(), n_tokens, scale, out.data());
            expect_close(out, ref, k_op_tol);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(attention_case{ggml_type::f32, 64, 8, 2}, attention_case{ggml_type::f16, 64, 8, 2},
                                           attention_case{ggml_type::f32, 64, 4, 4}, attention_case{ggml_type::f16, 64, 4, 4},
                                           attention_case{ggml_type::f32, 128, 8, 2}, attention_case{ggml_type::f16, 128, 8, 2},
                                           attention_case{ggml_type::f32, 128, 4, 4}, attention_case{ggml_type::f16, 128, 4, 4},
                                           attention_case{ggml_type::f16, 256, 8, 2}, attention_case{ggml_type::f32, 80, 4, 1},
                                           attention_case{ggml_type::f16, 8, 4, 4}),
                         attention_case_name);

TEST(CudaAttentionEdges, NoKeysGivesZerosAndBadShapesAreRefused) {
    const int64_t n_head = 4, head_dim = 64;
    const auto q = random_floats(size_t(n_head * head_dim), 1);
    const std::vector<float> cache(size_t(n_head * head_dim), 1.0f);
    const std::vector<int32_t> n_kv = {0};
    const auto dq_ = to_device(q);
    const auto dc = to_device(cache);
    const auto dn = to_device(n_kv);
    guarded_output out(q.size());
    cu::attention(dq_.as<float>(), dc.data(), dc.data(), ggml_type::f32, n_head, n_head, head_dim, dn.as<int32_t>(), 1,
                  0.125f, out.data());
    bool guards_ok = false;
    const auto got = out.read(&guards_ok);
    EXPECT_TRUE(guards_ok);
    for (float x : got) ASSERT_EQ(x, 0.0f);
    EXPECT_THROW(cu::attention(nullptr, nullptr, nullptr, ggml_type::f32, 6, 4, 64, nullptr, 1, 1.0f, nullptr), error);
    EXPECT_THROW(cu::attention(nullptr, nullptr, nullptr, ggml_type::f32, 4, 4, 257, nullptr, 1, 1.0f, nullptr), error);
    EXPECT_THROW(cu::attention(nullptr, nullptr, nullptr, ggml_type::q8_0, 4, 4, 64, nullptr, 1, 1.0f, nullptr), error);
}

}  // namespace
}  // namespace edgellm

// Custom main: with no usable device every test would fail for a reason that is not a bug, so
// the binary says so and returns 77, which CTest's SKIP_RETURN_CODE turns into "Not Run".
int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
#ifdef GTEST_FLAG_GET
    const bool list_only = GTEST_FLAG_GET(list_tests);
#else
    const bool list_only = ::testing::GTEST_FLAG(list_tests);
#endif
    if (list_only) return RUN_ALL_TESTS();  // listing needs no device
    if (!edgellm::kernels::cuda::available()) {
        std::printf("no CUDA device: skipping the CUDA op tests\n");
        return 77;
    }
    return RUN_ALL_TESTS();
}
