// Reference row (de)quantizers for the plain and legacy 32-element block types, following
// ggml-quants.c's *_ref functions operation for operation so results are bit-identical.
#include "quant/quant.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "quant/fp16.h"
#include "quant/quant_internal.h"

EDGELLM_NO_FP_CONTRACT

namespace edgellm {

void check_row_length(ggml_type type, int64_t n, int64_t block_size) {
    if (n < 0 || n % block_size != 0)
        throw error("row of " + std::to_string(n) + " elements is not a whole number of " +
                    std::string(type_name(type)) + " blocks of " + std::to_string(block_size));
}

void dequantize_row_f16(const fp16_bits* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}

void dequantize_row_bf16(const bf16_bits* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

void quantize_row_f16(const float* x, fp16_bits* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void quantize_row_bf16(const float* x, bf16_bits* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

void dequantize_row_q4_0(const q4_0_block* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[i * QK4_0 + j] = static_cast<float>(x0) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = static_cast<float>(x1) * d;
        }
    }
}

void dequantize_row_q4_1(const q4_1_block* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_1; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const float m = fp16_to_fp32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            y[i * QK4_1 + j] = static_cast<float>(x[i].qs[j] & 0x0F) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void dequantize_row_q5_0(const q5_0_block* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n / QK5_0; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        uint32_t qh;
        std::memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const uint8_t xh_0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
            const uint8_t xh_1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
            const int x0 = ((x[i].qs[j] & 0x0F) | xh_0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | xh_1) - 16;
            y[i * QK5_0 + j] = static_cast<float>(x0) * d;
            y[i * QK5_0 + j + QK5_0 / 2] = static_cast<float>(x1) * d;
        }
    }
}

void dequantize_row_q5_1(const q5_1_block* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n / QK5_1; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const float m = fp16_to_fp32(x[i].m);
        uint32_t qh;
        std::memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const uint8_t xh_0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
            const uint8_t xh_1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
            const int x0 = (x[i].qs[j] & 0x0F) | xh_0;
            const int x1 = (x[i].qs[j] >> 4) | xh_1;
            y[i * QK5_1 + j] = static_cast<float>(x0) * d + m;
            y[i * QK5_1 + j + QK5_1 / 2] = static_cast<float>(x1) * d + m;
        }
    }
}

void dequantize_row_q8_0(const q8_0_block* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[i * QK8_0 + j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

void dequantize_row_q8_1(const q8_1_block* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_1; ++j) y[i * QK8_1 + j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

namespace {
// Index and value of the element with the largest magnitude (the first one on ties).
float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

void min_max(const float* x, int n, float* min, float* max) {
    *min = 3.402823466e+38f;
    *max = -3.402823466e+38f;
    for (int j = 0; j < n; ++j) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}
}  // namespace

void quantize_row_q4_0(const float* x, q4_0_block* y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; ++i, x += QK4_0) {
        const float max = signed_absmax(x, QK4_0);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK4_0 / 2 + j] * id;
            const uint8_t xi0 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x0 + 8.5f)));
            const uint8_t xi1 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x1 + 8.5f)));
            y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
        }
    }
}

void quantize_row_q4_1(const float* x, q4_1_block* y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_1; ++i, x += QK4_1) {
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK4_1 / 2 + j] - min) * id;
            const uint8_t xi0 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x0 + 0.5f)));
            const uint8_t xi1 = std::min<uint8_t>(15, static_cast<uint8_t>(static_cast<int8_t>(x1 + 0.5f)));
            y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
        }
    }
}

void quantize_row_q5_0(const float* x, q5_0_block* y, int64_t n) {
    for (int64_t i = 0; i < n / QK5_0; ++i, x += QK5_0) {
        const float max = signed_absmax(x, QK5_0);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK5_0 / 2 + j] * id;
            const uint8_t xi0 = std::min<uint8_t>(31, static_cast<uint8_t>(static_cast<int8_t>(x0 + 16.5f)));
            const uint8_t xi1 = std::min<uint8_t>(31, static_cast<uint8_t>(static_cast<int8_t>(x1 + 16.5f)));
            y[i].qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << j;
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        std::memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

void quantize_row_q5_1(const float* x, q5_1_block* y, int64_t n) {
    for (int64_t i = 0; i < n / QK5_1; ++i, x += QK5_1) {
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK5_1 / 2 + j] - min) * id;
            const uint8_t xi0 = std::min<uint8_t>(31, static_cast<uint8_t>(x0 + 0.5f));
            const uint8_t xi1 = std::min<uint8_t>(31, static_cast<uint8_t>(x1 + 0.5f));
            y[i].qs[j] = static_cast<uint8_t>((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << j;
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        std::memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

void quantize_row_q8_0(const float* x, q8_0_block* y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        // roundf: halves away from zero, as ggml and gguf-py's np_roundf do.
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
    }
}

void quantize_row_q8_1(const float* x, q8_1_block* y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1 / 2; ++j) {
            const int v0 = static_cast<int>(std::roundf(x[j] * id));
            const int v1 = static_cast<int>(std::roundf(x[QK8_1 / 2 + j] * id));
            y[i].qs[j] = static_cast<int8_t>(v0);
            y[i].qs[QK8_1 / 2 + j] = static_cast<int8_t>(v1);
            sum += v0 + v1;
        }
        y[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
    }
}

bool can_dequantize(ggml_type type) {
    switch (type) {
        case ggml_type::f32: case ggml_type::f16: case ggml_type::bf16:
        case ggml_type::q4_0: case ggml_type::q4_1: case ggml_type::q5_0: case ggml_type::q5_1:
        case ggml_type::q8_0: case ggml_type::q8_1:
        case ggml_type::q2_k: case ggml_type::q3_k: case ggml_type::q4_k: case ggml_type::q5_k:
        case ggml_type::q6_k: case ggml_type::q8_k:
            return true;
        default:
            return false;
    }
}

bool can_quantize(ggml_type type) { return can_dequantize(type); }

void dequantize_row(ggml_type type, const void* src, float* dst, int64_t n) {
    const auto& tr = type_traits(type);
    if (!can_dequantize(type))
        throw error("dequantization of " + std::string(tr.name) + " not implemented");
    check_row_length(type, n, tr.block_size);
    switch (type) {
        case ggml_type::f32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
        case ggml_type::f16: return dequantize_row_f16(static_cast<const fp16_bits*>(src), dst, n);
        case ggml_type::bf16: return dequantize_row_bf16(static_cast<const bf16_bits*>(src), dst, n);
        case ggml_type::q4_0: return dequantize_row_q4_0(static_cast<const q4_0_block*>(src), dst, n);
        case ggml_type::q4_1: return dequantize_row_q4_1(static_cast<const q4_1_block*>(src), dst, n);
        case ggml_type::q5_0: return dequantize_row_q5_0(static_cast<const q5_0_block*>(src), dst, n);
        case ggml_type::q5_1: return dequantize_row_q5_1(static_cast<const q5_1_block*>(src), dst, n);
        case ggml_type::q8_0: return dequantize_row_q8_0(static_cast<const q8_0_block*>(src), dst, n);
        case ggml_type::q8_1: return dequantize_row_q8_1(static_cast<const q8_1_block*>(src), dst, n);
        case ggml_type::q2_k: return dequantize_row_q2_k(static_cast<const q2_k_block*>(src), dst, n);
        case ggml_type::q3_k: return dequantize_row_q3_k(static_cast<const q3_k_block*>(src), dst, n);
        case ggml_type::q4_k: return dequantize_row_q4_k(static_cast<const q4_k_block*>(src), dst, n);
        case ggml_type::q5_k: return dequantize_row_q5_k(static_cast<const q5_k_block*>(src), dst, n);
        case ggml_type::q6_k: return dequantize_row_q6_k(static_cast<const q6_k_block*>(src), dst, n);
        case ggml_type::q8_k: return dequantize_row_q8_k(static_cast<const q8_k_block*>(src), dst, n);
        default: break;
    }
}

size_t quantize_row(ggml_type type, const float* src, void* dst, int64_t n) {
    const auto& tr = type_traits(type);
    if (!can_quantize(type)) throw error("quantization to " + std::string(tr.name) + " not implemented");
    check_row_length(type, n, tr.block_size);
    if (tr.is_quantized) {
        // Block formats cannot represent NaN/Inf (and converting them to ints is undefined), so the
        // checked entry point refuses them instead of writing garbage.
        for (int64_t i = 0; i < n; ++i)
            if (!std::isfinite(src[i]))
                throw error("cannot quantize non-finite value " + std::to_string(src[i]) + " at element " +
                            std::to_string(i) + " to " + std::string(tr.name));
    }
    switch (type) {
        case ggml_type::f32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
        case ggml_type::f16: quantize_row_f16(src, static_cast<fp16_bits*>(dst), n); break;
        case ggml_type::bf16: quantize_row_bf16(src, static_cast<bf16_bits*>(dst), n); break;
        case ggml_type::q4_0: quantize_row_q4_0(src, static_cast<q4_0_block*>(dst), n); break;
        case ggml_type::q4_1: quantize_row_q4_1(src, static_cast<q4_1_block*>(dst), n); break;
        case ggml_type::q5_0: quantize_row_q5_0(src, static_cast<q5_0_block*>(dst), n); break;
        case ggml_type::q5_1: quantize_row_q5_1(src, static_cast<q5_1_block*>(dst), n); break;
        case ggml_type::q8_0: quantize_row_q8_0(src, static_cast<q8_0_block*>(dst), n); break;
        case ggml_type::q8_1: quantize_row_q8_1(src, static_cast<q8_1_block*>(dst), n); break;
        case ggml_type::q8_k: quantize_row_q8_k(src, static_cast<q8_k_block*>(dst), n); break;
        case ggml_type::q2_k: quantize_row_q2_k(src, static_cast<q2_k_block*>(dst), n); break;
        case ggml_type::q3_k: quantize_row_q3_k(src, static_cast<q3_k_block*>(dst), n); break;
        case ggml_type::q4_k: quantize_row_q4_k(src, static_cast<q4_k_block*>(dst), n); break;
        case ggml_type::q5_k: quantize_row_q5_k(src, static_cast<q5_k_block*>(dst), n); break;
        case ggml_type::q6_k: quantize_row_q6_k(src, static_cast<q6_k_block*>(dst), n); break;
        default: break;
    }
    return row_size(type, n);
}

}  // namespace edgellm
