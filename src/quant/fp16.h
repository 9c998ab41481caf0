// Exact conversions between binary32 and IEEE binary16 / bfloat16 (round-to-nearest-even),
// the scalar reference that every faster path (F16C, NEON, CUDA) must agree with bit for bit.
#pragma once
#include <bit>
#include <cstdint>

#include "quant/blocks.h"

namespace edgellm {

// binary16 -> binary32 is exact for every input, subnormals, infinities and NaN payloads included.
constexpr float fp16_to_fp32(fp16_bits h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return std::bit_cast<float>(sign);
        // Subnormal: normalise so the leading 1 becomes the implicit bit.
        int e = -1;
        do {
            mant <<= 1;
            ++e;
        } while ((mant & 0x400u) == 0);
        mant &= 0x3ffu;
        return std::bit_cast<float>(sign | (static_cast<uint32_t>(112 - e) << 23) | (mant << 13));
    }
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

// binary32 -> binary16 with round-to-nearest-even; overflow gives +-Inf, NaN stays a (quiet) NaN
// keeping the top payload bits, as numpy's astype(float16) and ggml's scalar path do.
constexpr fp16_bits fp32_to_fp16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        if (a == 0x7f800000u) return sign | 0x7c00u;
        return static_cast<fp16_bits>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a < 0x38800000u) {
        // Result is subnormal (or zero): value / 2^-24, rounded to nearest even.
        if (a <= 0x33000000u) return sign;  // <= 2^-25: ties to the even zero
        const uint32_t exp = a >> 23;
        const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - exp;  // 14..24
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        uint32_t m = mant >> shift;
        if (rem > half || (rem == half && (m & 1u))) ++m;
        return static_cast<fp16_bits>(sign | m);
    }
    // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits; a carry out of the
    // mantissa correctly bumps the exponent, up to Inf.
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    if (h >= 0x7c00u) return sign | 0x7c00u;
    return static_cast<fp16_bits>(sign | h);
}

constexpr float bf16_to_fp32(bf16_bits h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// binary32 -> bfloat16, round-to-nearest-even; NaN is forced quiet (ggml and gguf-py do the same).
constexpr bf16_bits fp32_to_bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_bits>((u >> 16) | 64u);
    return static_cast<bf16_bits>((static_cast<uint64_t>(u) + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static_assert(fp32_to_fp16(1.0f) == 0x3c00);
static_assert(fp32_to_fp16(65504.0f) == 0x7bff);
static_assert(fp32_to_fp16(65520.0f) == 0x7c00);
static_assert(fp16_to_fp32(0x0001) == 5.9604644775390625e-8f);
static_assert(fp32_to_bf16(1.0f) == 0x3f80);

}  // namespace edgellm
