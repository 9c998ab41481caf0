// Shared helpers for the kernel tests: random data, quantized weight matrices, normalized MSE,
// guarded output buffers, and the list of op tables this CPU can run.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "quant/quant.h"

namespace edgellm::test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

// A [n_rows][n_cols] matrix of type t made by quantizing random normal floats with the quant
// module's reference quantizer (every weight type edgellm can run has one).
inline std::vector<uint8_t> random_weights(ggml_type t, int64_t n_rows, int64_t n_cols, uint32_t seed) {
    const auto src = random_floats(size_t(n_rows * n_cols), seed);
    const size_t rb = row_size(t, n_cols);
    std::vector<uint8_t> w(rb * size_t(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) quantize_row(t, src.data() + r * n_cols, w.data() + size_t(r) * rb, n_cols);
    return w;
}

// sum((a-b)^2) / sum(b^2): the error measure of ggml's test-backend-ops.
inline double nmse(const float* a, const float* ref, size_t n) {
    double err = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; ++i) {
        err += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
        norm += double(ref[i]) * ref[i];
    }
    return norm > 0.0 ? err / norm : err;
}

inline bool all_finite(const float* a, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (!std::isfinite(a[i])) return false;
    return true;
}

// A float buffer with guard zones before and after, filled with a marker bit pattern, so a
// kernel writing outside [data(), data()+n) is caught.
class guarded_buffer {
public:
    static constexpr size_t k_guard = 64;
    static constexpr uint32_t k_marker = 0x7fa5a5a5u;  // a NaN no kernel produces

    explicit guarded_buffer(size_t n) : n_(n), buf_(n + 2 * k_guard) {
        for (auto& x : buf_) std::memcpy(&x, &k_marker, sizeof x);
    }
    float* data() { return buf_.data() + k_guard; }
    const float* data() const { return buf_.data() + k_guard; }
    size_t size() const { return n_; }
    bool guards_intact() const {
        for (size_t i = 0; i < buf_.size(); ++i) {
            if (i >= k_guard && i < k_guard + n_) continue;
            uint32_t u;
            std::memcpy(&u, &buf_[i], sizeof u);
            if (u != k_marker) return false;
        }
        return true;
    }

private:
    size_t n_;
    std::vector<float> buf_;
};

// Tolerances on the squared error normalized by sum(y_ref^2) (NMSE) and by the sum of squared
// products (see the test body); the reference dequantizes the same weights
// exactly and accumulates in double, so weight quantization error is NOT part of the difference.
//  - F32/F16/BF16: the fast path sums exactly the same products in f32 in another order; the
//    only error is f32 rounding of the sums (~1e-7 relative), so NMSE ~1e-14; bound 1e-10.
//  - 32-element types (Q4_0 ... Q8_0): activations are quantized to 8 bits per block of 32 with
//    step max|x|/127. For normal data max|x| ~ 2.5 sigma, so the rounding noise variance is
//    (2.5/127)^2/12 ~ 3e-5 of the signal: the expected NMSE is ~3e-5; bound 2e-4 (6x margin,
//    covers the spread over small shapes like 1x32).
//  - K-quants: the activation block is 256 wide, max|x| ~ 3.3 sigma, noise ~ 6e-5; bound 4e-4.
inline double tolerance(ggml_type t) {
    switch (t) {
        case ggml_type::f32:
        case ggml_type::f16:
        case ggml_type::bf16: return 1e-10;
        case ggml_type::q4_0:
        case ggml_type::q4_1:
        case ggml_type::q5_0:
        case ggml_type::q5_1:
        case ggml_type::q8_0: return 2e-4;
        default: return 4e-4;
    }
}

struct named_table {
    std::string name;
    const kernels::cpu::isa_ops* ops;
};

// Every op table the running CPU supports: the generic one always, SIMD ones when present.
inline std::vector<named_table> available_tables() {
    std::vector<named_table> t{{"generic", &kernels::cpu::generic_ops()}};
    if (const auto* o = kernels::cpu::avx2_ops()) t.push_back({"avx2", o});
    if (const auto* o = kernels::cpu::avx512_ops()) t.push_back({"avx512", o});
    if (const auto* o = kernels::cpu::neon_ops()) t.push_back({"neon", o});
    return t;
}

}  // namespace edgellm::test
