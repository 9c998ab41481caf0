// Quantization block layouts, byte-for-byte as ggml defines them (ggml-common.h), so GGUF
// tensor data can be read in place. Half-precision fields are raw IEEE binary16 bits.
#pragma once
#include <cstddef>
#include <cstdint>

namespace edgellm {

using fp16_bits = uint16_t;  // IEEE 754 binary16, stored little-endian as on disk
using bf16_bits = uint16_t;  // bfloat16: the upper 16 bits of a binary32

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;          // super-block size of the k-quants
constexpr int K_SCALE_SIZE = 12;   // packed 6-bit scales + mins of q4_k / q5_k (and q3_k scales)

// x = d * (q - 8), q in [0, 15]; element j in low nibble of qs[j], element j+16 in high nibble.
struct q4_0_block {
    fp16_bits d;
    uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(q4_0_block) == 18, "q4_0 block must be 18 bytes");

// x = d * q + m, q in [0, 15].
struct q4_1_block {
    fp16_bits d;
    fp16_bits m;
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(q4_1_block) == 20, "q4_1 block must be 20 bytes");

// x = d * (q - 16), q 5 bits: low nibble in qs as q4_0, 5th bit j in bit j of qh (little-endian u32).
struct q5_0_block {
    fp16_bits d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(q5_0_block) == 22, "q5_0 block must be 22 bytes");

// x = d * q + m, q 5 bits.
struct q5_1_block {
    fp16_bits d;
    fp16_bits m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(q5_1_block) == 24, "q5_1 block must be 24 bytes");

// x = d * q, q int8.
struct q8_0_block {
    fp16_bits d;
    int8_t qs[QK8_0];
};
static_assert(sizeof(q8_0_block) == 34, "q8_0 block must be 34 bytes");

// Like q8_0 plus s = d * sum(q), used as the activation side of q4_1/q5_1 dot products.
struct q8_1_block {
    fp16_bits d;
    fp16_bits s;
    int8_t qs[QK8_1];
};
static_assert(sizeof(q8_1_block) == 36, "q8_1 block must be 36 bytes");

// 16 sub-blocks of 16: scales[i] = 4-bit scale | 4-bit min << 4; x = d*sc*q - dmin*m, q 2 bits.
struct q2_k_block {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    fp16_bits d;
    fp16_bits dmin;
};
static_assert(sizeof(q2_k_block) == 2 * 2 + QK_K / 16 + QK_K / 4, "q2_k block must be 84 bytes");

// 16 sub-blocks of 16 with 6-bit signed scales (offset 32) packed in 12 bytes; q = 2 low bits in
// qs plus a high bit in hmask (set means +4 is NOT subtracted); x = d * (sc - 32) * (q - 4*!h).
struct q3_k_block {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[K_SCALE_SIZE];
    fp16_bits d;
};
static_assert(sizeof(q3_k_block) == 2 + QK_K / 4 + QK_K / 8 + 12, "q3_k block must be 110 bytes");

// 8 sub-blocks of 32 with 6-bit scales and mins; x = d*sc*q - dmin*m, q 4 bits.
struct q4_k_block {
    fp16_bits d;
    fp16_bits dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(q4_k_block) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "q4_k block must be 144 bytes");

// As q4_k with a 5th bit per element in qh.
struct q5_k_block {
    fp16_bits d;
    fp16_bits dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(q5_k_block) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8,
              "q5_k block must be 176 bytes");

// 16 sub-blocks of 16 with int8 scales; q 6 bits = 4 low in ql + 2 high in qh; x = d*sc*(q-32).
struct q6_k_block {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    fp16_bits d;
};
static_assert(sizeof(q6_k_block) == 2 + QK_K / 16 + 3 * QK_K / 4, "q6_k block must be 210 bytes");

// Activation-side block of the k-quant dot products: float scale, int8 values, and sums of each
// group of 16 values.
struct q8_k_block {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
static_assert(sizeof(q8_k_block) == sizeof(float) + QK_K + QK_K / 16 * sizeof(int16_t),
              "q8_k block must be 292 bytes");

}  // namespace edgellm
