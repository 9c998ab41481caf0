// Reference (scalar, double-accumulating) element-wise ops, RoPE and attention. These define
// the intended math; see kernels/kernels.h for the contracts.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/ref/ref.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm::kernels::ref {

void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) {
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * n;
        float* yt = y + t * n;
        double sum_sq = 0.0;
        for (int64_t i = 0; i < n; ++i) sum_sq += double(xt[i]) * xt[i];
        const double inv = 1.0 / std::sqrt(sum_sq / double(n) + eps);
        for (int64_t i = 0; i < n; ++i) yt[i] = float(xt[i] * inv * weight[i]);
    }
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t n, int64_t n_tokens,
                float eps) {
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * n;
        float* yt = y + t * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += xt[i];
        const double mean = sum / double(n);
        double var = 0.0;
        for (int64_t i = 0; i < n; ++i) var += (xt[i] - mean) * (xt[i] - mean);
        const double inv = 1.0 / std::sqrt(var / double(n) + eps);
        for (int64_t i = 0; i < n; ++i) {
            const double v = (xt[i] - mean) * inv * weight[i] + (bias ? bias[i] : 0.0f);
            yt[i] = float(v);
        }
    }
}

void gelu(float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = float(0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0))));
}

// ggml's rope: "normal" rotates adjacent pairs (x[2i], x[2i+1]); "neox" rotates
// (x[i], x[i + n_rot/2]). Dims past n_rot pass through unchanged.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float freq_base,
          float freq_scale, const float* freq_factors, rope_mode mode) {
    if (n_rot > head_dim || n_rot % 2 != 0) throw error("rope: n_rot must be even and <= head_dim");
    const int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        float* xh = x + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
            double theta = double(pos) * freq_scale * std::pow(double(freq_base), -2.0 * double(i) / double(n_rot));
            if (freq_factors) theta /= freq_factors[i];
            const double c = std::cos(theta), s = std::sin(theta);
            const int64_t i0 = mode == rope_mode::neox ? i : 2 * i;
            const int64_t i1 = mode == rope_mode::neox ? i + half : 2 * i + 1;
            const double a = xh[i0], b = xh[i1];
            xh[i0] = float(a * c - b * s);
            xh[i1] = float(a * s + b * c);
        }
    }
}

void softmax(float* x, int64_t n) {
    if (n <= 0) return;
    float max_v = x[0];
    for (int64_t i = 1; i < n; ++i) max_v = std::max(max_v, x[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - max_v);
    for (int64_t i = 0; i < n; ++i) x[i] = float(std::exp(double(x[i]) - max_v) / sum);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const double g = gate[i];
        y[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
    }
}

// GELU, tanh approximation (ggml_gelu, PyTorch approximate="tanh").
void geglu(const float* gate, const float* up, float* y, int64_t n) {
    constexpr double k_sqrt_2_over_pi = 0.79788456080286535588;
    for (int64_t i = 0; i < n; ++i) {
        const double g = gate[i];
        const double gelu = 0.5 * g * (1.0 + std::tanh(k_sqrt_2_over_pi * g * (1.0 + 0.044715 * g * g)));
        y[i] = float(gelu * up[i]);
    }
}

void softcap(float* x, int64_t n, float cap) {
    for (int64_t i = 0; i < n; ++i) x[i] = float(double(cap) * std::tanh(double(x[i]) / cap));
}

void add(float* y, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void kv_head_slice(const void* row, ggml_type t, int64_t first, int64_t n, float* dst) {
    if (t == ggml_type::f32) {
        const auto* r = static_cast<const float*>(row) + first;
        std::copy(r, r + n, dst);
    } else if (t == ggml_type::f16) {
        const auto* r = static_cast<const uint16_t*>(row) + first;
        for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(r[i]);
    } else {
        const auto& tt = type_traits(t);
        if (first % tt.block_size != 0 || n % tt.block_size != 0)
            // (no fmt here: the kernels build standalone for the aarch64 cross test)
            throw error("attention: a " + std::string(type_name(t)) + " KV cache needs heads of whole " +
                        std::to_string(tt.block_size) + "-element blocks");
        dequantize_row(t, static_cast<const uint8_t*>(row) + static_cast<size_t>(first / tt.block_size) * tt.type_size,
                       dst, n);
    }
}

void attention(const float* q, const kv_view& kv, int64_t n_kv, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, float scale, float* out, float* scratch) {
    ref::attention_ext(q, kv, 0, n_kv, n_head, n_head_kv, head_dim, scale, 0.0f, out, scratch);
}

void attention_ext(const float* q, const kv_view& kv, int64_t kv_first, int64_t n_kv, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, float scale, float softcap, float* out, float* scratch) {
    const ggml_type kv_type = kv.type;
    if (kv_type != ggml_type::f32 && kv_type != ggml_type::f16 && kv_type != ggml_type::q8_0 &&
        kv_type != ggml_type::q4_0)
        throw error("attention: KV cache type must be F32, F16, Q8_0 or Q4_0");
    if (n_head_kv <= 0 || n_head % n_head_kv != 0)
        throw error("attention: n_head must be a multiple of n_head_kv");
    if (kv_first < 0 || (kv_first > 0 && kv_first >= n_kv)) throw error("attention: the key range must not be empty");
    const int64_t group = n_head / n_head_kv;
    std::vector<double> acc(static_cast<size_t>(head_dim));
    std::vector<float> row(static_cast<size_t>(head_dim));
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t hk = h / group;
        const float* qh = q + h * head_dim;
        double max_s = -INFINITY;
        for (int64_t j = kv_first; j < n_kv; ++j) {
            double s = 0.0;
            kv_head_slice(kv.k_row(j), kv_type, hk * head_dim, head_dim, row.data());
            for (int64_t d = 0; d < head_dim; ++d) s += double(qh[d]) * row[d];
            s *= scale;
            if (softcap > 0.0f) s = softcap * std::tanh(s / softcap);
            scratch[j] = float(s);
            max_s = std::max(max_s, double(scratch[j]));
        }
        double sum = 0.0;
        for (int64_t j = kv_first; j < n_kv; ++j) sum += std::exp(double(scratch[j]) - max_s);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = kv_first; j < n_kv; ++j) {
            const double p = std::exp(double(scratch[j]) - max_s) / sum;
            kv_head_slice(kv.v_row(j), kv_type, hk * head_dim, head_dim, row.data());
            for (int64_t d = 0; d < head_dim; ++d) acc[d] += p * row[d];
        }
        for (int64_t d = 0; d < head_dim; ++d) out[h * head_dim + d] = float(acc[d]);
    }
}

void get_row(ggml_type wt, const void* w, int64_t n_cols, int64_t row, float* dst) {
    const auto* base = static_cast<const uint8_t*>(w) + size_t(row) * row_size(wt, n_cols);
    dequantize_row(wt, base, dst, n_cols);
}

void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x,
             int64_t n_tokens, float* y) {
    const size_t row_bytes = row_size(wt, n_cols);
    std::vector<float> wrow(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        dequantize_row(wt, static_cast<const uint8_t*>(w) + size_t(r) * row_bytes, wrow.data(), n_cols);
        for (int64_t t = 0; t < n_tokens; ++t) {
            const float* xt = x + t * n_cols;
            double s = 0.0;
            for (int64_t c = 0; c < n_cols; ++c) s += double(wrow[c]) * xt[c];
            y[t * n_rows + r] = float(s);
        }
    }
}

}  // namespace edgellm::kernels::ref
