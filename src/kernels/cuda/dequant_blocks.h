// Per-block dequantizers of every weight type the CUDA kernels read, written once for both sides:
// nvcc compiles them as __host__ __device__, g++ as plain inline functions, so the CPU test suite
// (tests/unit/cuda_dequant_blocks_test.cpp) checks bit for bit the arithmetic the GPU runs
// against the quant module's reference dequantizers (src/quant/quant.cpp, quant_k.cpp).
//
// The unit of work is a "chunk": 8 consecutive elements (in logical order) of one block. Every
// quantized type has a block size that is a multiple of 8 and no chunk straddles a scale group,
// so one chunk needs one scale (and min); a warp lane or a GEMM tile loader dequantizes chunks.
#pragma once
#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "quant/ggml_type.h"

#if defined(__CUDACC__)
#define EDGELLM_HD __host__ __device__ __forceinline__
#else
#define EDGELLM_HD inline
#endif

namespace edgellm::kernels::cuda::dq {

constexpr int k_chunk = 8;  // elements per chunk

// ---- scalar conversions (bit manipulation, identical on host and device) ----

EDGELLM_HD float bits_to_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

EDGELLM_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}

// IEEE binary16 -> binary32, exact for every input (subnormals, Inf, NaN payloads), matching
// edgellm::fp16_to_fp32. A subnormal is mant * 2^-24, exact in f32.
EDGELLM_HD float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0x1fu) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) return bits_to_f32(sign | f32_to_bits(static_cast<float>(mant) * 5.9604644775390625e-8f));
    return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

EDGELLM_HD float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

// binary32 -> binary16, round to nearest even; overflow to +-Inf, NaN stays a quiet NaN with its
// top payload bits: the same bits as edgellm::fp32_to_fp16 (used to write F16 KV caches).
EDGELLM_HD uint16_t f32_to_f16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        if (a == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
        return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a < 0x38800000u) {
        if (a <= 0x33000000u) return sign;
        const uint32_t exp = a >> 23;
        const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - exp;
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        uint32_t m = mant >> shift;
        if (rem > half || (rem == half && (m & 1u))) ++m;
        return static_cast<uint16_t>(sign | m);
    }
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    if (h >= 0x7c00u) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | h);
}

// a * b + c and a * b - c rounded twice, as the reference (compiled without FP contraction)
// does. nvcc would otherwise fuse them into one FMA and change the last bit.
EDGELLM_HD float mul_add_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(__fmul_rn(a, b), c);
#else
    const float p = a * b;
    return p + c;
#endif
}

EDGELLM_HD float mul_sub_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(__fmul_rn(a, b), c);
#else
    const float p = a * b;
    return p - c;
#endif
}

// Little-endian u32 from 4 bytes of any alignment (the qh field of q5_0 / q5_1).
EDGELLM_HD uint32_t load_u32_le(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
}

// ---- 32-element block types ----
// Chunk c (0..3) holds elements 8c..8c+7. For the 4-bit types element j < 16 is the low nibble
// of qs[j] and element j + 16 the high nibble.

EDGELLM_HD void chunk_q4_0(const q4_0_block* b, int c, float* out) {
    const float d = f16_to_f32(b->d);
    const int base = (c & 1) * 8;
    const int shift = c >= 2 ? 4 : 0;
    for (int i = 0; i < 8; ++i) {
        const int q = ((b->qs[base + i] >> shift) & 0x0F) - 8;
        out[i] = static_cast<float>(q) * d;
    }
}

EDGELLM_HD void chunk_q4_1(const q4_1_block* b, int c, float* out) {
    const float d = f16_to_f32(b->d);
    const float m = f16_to_f32(b->m);
    const int base = (c & 1) * 8;
    const int shift = c >= 2 ? 4 : 0;
    for (int i = 0; i < 8; ++i) {
        const int q = (b->qs[base + i] >> shift) & 0x0F;
        out[i] = mul_add_rn(static_cast<float>(q), d, m);
    }
}

EDGELLM_HD void chunk_q5_0(const q5_0_block* b, int c, float* out) {
    const float d = f16_to_f32(b->d);
    const uint32_t qh = load_u32_le(b->qh);
    const int base = (c & 1) * 8;
    const bool high = c >= 2;
    for (int i = 0; i < 8; ++i) {
        const int j = base + i;  // byte index; the element is j (low nibble) or j + 16 (high)
        const int lo = high ? (b->qs[j] >> 4) : (b->qs[j] & 0x0F);
        const int hb = static_cast<int>((qh >> (high ? j + 16 : j)) & 1u);
        out[i] = static_cast<float>((lo | (hb << 4)) - 16) * d;
    }
}

EDGELLM_HD void chunk_q5_1(const q5_1_block* b, int c, float* out) {
    const float d = f16_to_f32(b->d);
    const float m = f16_to_f32(b->m);
    const uint32_t qh = load_u32_le(b->qh);
    const int base = (c & 1) * 8;
    const bool high = c >= 2;
    for (int i = 0; i < 8; ++i) {
        const int j = base + i;
        const int lo = high ? (b->qs[j] >> 4) : (b->qs[j] & 0x0F);
        const int hb = static_cast<int>((qh >> (high ? j + 16 : j)) & 1u);
        out[i] = mul_add_rn(static_cast<float>(lo | (hb << 4)), d, m);
    }
}

EDGELLM_HD void chunk_q8_0(const q8_0_block* b, int c, float* out) {
    const float d = f16_to_f32(b->d);
    for (int i = 0; i < 8; ++i) out[i] = static_cast<float>(b->qs[8 * c + i]) * d;
}

// ---- k-quants: 256-element super-blocks, chunk c (0..31) holds elements 8c..8c+7 ----

// Q2_K: element e sits in 128-half n = e/128, 32-lane group j = (e%128)/32 (2-bit field at
// shift 2j of qs[32n + e%32]); its scale byte is scales[e/16].
EDGELLM_HD void chunk_q2_k(const q2_k_block* b, int c, float* out) {
    const int e = 8 * c;
    const float d = f16_to_f32(b->d);
    const float min = f16_to_f32(b->dmin);
    const uint8_t sc = b->scales[e / 16];
    const float dl = d * static_cast<float>(sc & 0xF);
    const float ml = min * static_cast<float>(sc >> 4);
    const uint8_t* q = b->qs + 32 * (e / 128) + (e % 32);
    const int shift = 2 * ((e % 128) / 32);
    for (int i = 0; i < 8; ++i) out[i] = mul_sub_rn(dl, static_cast<float>((q[i] >> shift) & 3), ml);
}

// The signed 6-bit scale s (0..15) of a q3_k block: 4 low bits from byte s (s < 8) or the high
// nibble of byte s - 8, 2 high bits from byte 8 + s%4 at bit 2*(s/4); minus 32 (ggml's kmask
// shuffle, one scale at a time).
EDGELLM_HD int q3_k_scale(const uint8_t* scales, int s) {
    const int lo = s < 8 ? (scales[s] & 0x0F) : (scales[s - 8] >> 4);
    const int hi = (scales[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
    return static_cast<int>(static_cast<int8_t>(static_cast<uint8_t>(lo | (hi << 4)) - 32));
}

// Q3_K: 2 low bits as Q2_K, the high bit in hmask[e%32] at bit 4*(e/128) + (e%128)/32; a clear
// high bit subtracts 4.
EDGELLM_HD void chunk_q3_k(const q3_k_block* b, int c, float* out) {
    const int e = 8 * c;
    const float d_all = f16_to_f32(b->d);
    const float dl = d_all * static_cast<float>(q3_k_scale(b->scales, e / 16));
    const uint8_t* q = b->qs + 32 * (e / 128) + (e % 32);
    const uint8_t* hm = b->hmask + (e % 32);
    const int shift = 2 * ((e % 128) / 32);
    const uint8_t m = static_cast<uint8_t>(1u << (4 * (e / 128) + (e % 128) / 32));
    for (int i = 0; i < 8; ++i) {
        const int v = ((q[i] >> shift) & 3) - ((hm[i] & m) ? 0 : 4);
        out[i] = dl * static_cast<float>(v);
    }
}

// The 6-bit scale and min of sub-block j (0..7) of a q4_k / q5_k block (ggml's get_scale_min_k4).
EDGELLM_HD void k4_scale_min_hd(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K: 64-element group g = e/64 uses qs[32g .. 32g+31], low nibbles for its first 32 elements
// (sub-block 2g), high nibbles for the next 32 (sub-block 2g+1).
EDGELLM_HD void chunk_q4_k(const q4_k_block* b, int c, float* out) {
    const int e = 8 * c;
    const float d = f16_to_f32(b->d);
    const float min = f16_to_f32(b->dmin);
    const int sub = e / 32;
    int sc, m;
    k4_scale_min_hd(sub, b->scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = min * static_cast<float>(m);
    const uint8_t* q = b->qs + 32 * (e / 64) + (e % 32);
    const int shift = (sub & 1) ? 4 : 0;
    for (int i = 0; i < 8; ++i) out[i] = mul_sub_rn(d1, static_cast<float>((q[i] >> shift) & 0xF), m1);
}

// Q5_K: as Q4_K plus a 5th bit in qh[e%32] at bit index sub = e/32.
EDGELLM_HD void chunk_q5_k(const q5_k_block* b, int c, float* out) {
    const int e = 8 * c;
    const float d = f16_to_f32(b->d);
    const float min = f16_to_f32(b->dmin);
    const int sub = e / 32;
    int sc, m;
    k4_scale_min_hd(sub, b->scales, &sc, &m);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = min * static_cast<float>(m);
    const uint8_t* ql = b->qs + 32 * (e / 64) + (e % 32);
    const uint8_t* qh = b->qh + (e % 32);
    const int shift = (sub & 1) ? 4 : 0;
    const uint8_t hmask = static_cast<uint8_t>(1u << sub);
    for (int i = 0; i < 8; ++i) {
        const int q = ((ql[i] >> shift) & 0xF) + ((qh[i] & hmask) ? 16 : 0);
        out[i] = mul_sub_rn(d1, static_cast<float>(q), m1);
    }
}

// Q6_K: 128-half n = e/128 uses ql[64n..], qh[32n..], scales[8n..]; quarter k = (e%128)/32 takes
// the low (k = 0, 1) or high (k = 2, 3) nibble of ql[l + 32*(k&1)] and bits 2k..2k+1 of qh[l],
// l = e%32, scale scales[8n + l/16 + 2k]. x = d * sc * (q - 32), multiplied left to right.
EDGELLM_HD void chunk_q6_k(const q6_k_block* b, int c, float* out) {
    const int e = 8 * c;
    const int n = e / 128;
    const int k = (e % 128) / 32;
    const int l = e % 32;
    const float d = f16_to_f32(b->d);
    const float dsc = d * static_cast<float>(b->scales[8 * n + l / 16 + 2 * k]);
    const uint8_t* ql = b->ql + 64 * n + 32 * (k & 1) + l;
    const uint8_t* qh = b->qh + 32 * n + l;
    const int lshift = k >= 2 ? 4 : 0;
    for (int i = 0; i < 8; ++i) {
        const int q = (((ql[i] >> lshift) & 0xF) | (((qh[i] >> (2 * k)) & 3) << 4)) - 32;
        out[i] = dsc * static_cast<float>(q);
    }
}

// ---- type traits for templated kernels ----

template <ggml_type T>
struct block_traits;

#define EDGELLM_DQ_TRAITS(TYPE, BLOCK, QK, FN)                                          \
    template <>                                                                         \
    struct block_traits<ggml_type::TYPE> {                                              \
        using block = BLOCK;                                                            \
        static constexpr int qk = QK;                                                   \
        static constexpr int chunks = QK / k_chunk;                                     \
        EDGELLM_HD static void chunk(const void* blocks, int64_t ib, int c, float* out) { \
            FN(static_cast<const BLOCK*>(blocks) + ib, c, out);                         \
        }                                                                               \
    };

EDGELLM_DQ_TRAITS(q4_0, q4_0_block, QK4_0, chunk_q4_0)
EDGELLM_DQ_TRAITS(q4_1, q4_1_block, QK4_1, chunk_q4_1)
EDGELLM_DQ_TRAITS(q5_0, q5_0_block, QK5_0, chunk_q5_0)
EDGELLM_DQ_TRAITS(q5_1, q5_1_block, QK5_1, chunk_q5_1)
EDGELLM_DQ_TRAITS(q8_0, q8_0_block, QK8_0, chunk_q8_0)
EDGELLM_DQ_TRAITS(q2_k, q2_k_block, QK_K, chunk_q2_k)
EDGELLM_DQ_TRAITS(q3_k, q3_k_block, QK_K, chunk_q3_k)
EDGELLM_DQ_TRAITS(q4_k, q4_k_block, QK_K, chunk_q4_k)
EDGELLM_DQ_TRAITS(q5_k, q5_k_block, QK_K, chunk_q5_k)
EDGELLM_DQ_TRAITS(q6_k, q6_k_block, QK_K, chunk_q6_k)
#undef EDGELLM_DQ_TRAITS

// Element i of a row of a plain (block size 1) type: F32, F16, BF16.
template <ggml_type T>
EDGELLM_HD float plain_elem(const void* row, int64_t i) {
    if constexpr (T == ggml_type::f32) {
        return static_cast<const float*>(row)[i];
    } else if constexpr (T == ggml_type::f16) {
        return f16_to_f32(static_cast<const uint16_t*>(row)[i]);
    } else {
        static_assert(T == ggml_type::bf16, "plain_elem: F32, F16 or BF16");
        return bf16_to_f32(static_cast<const uint16_t*>(row)[i]);
    }
}

template <ggml_type T>
constexpr bool is_plain = T == ggml_type::f32 || T == ggml_type::f16 || T == ggml_type::bf16;

// Chunk `c` (0 .. qk/8 - 1) of block `ib` of a row of type t, by run-time type. Returns false
// for a type without a chunk dequantizer (the plain types and everything not listed above).
EDGELLM_HD bool dequant_chunk(ggml_type t, const void* blocks, int64_t ib, int c, float* out) {
    switch (t) {
        case ggml_type::q4_0: block_traits<ggml_type::q4_0>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q4_1: block_traits<ggml_type::q4_1>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q5_0: block_traits<ggml_type::q5_0>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q5_1: block_traits<ggml_type::q5_1>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q8_0: block_traits<ggml_type::q8_0>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q2_k: block_traits<ggml_type::q2_k>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q3_k: block_traits<ggml_type::q3_k>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q4_k: block_traits<ggml_type::q4_k>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q5_k: block_traits<ggml_type::q5_k>::chunk(blocks, ib, c, out); return true;
        case ggml_type::q6_k: block_traits<ggml_type::q6_k>::chunk(blocks, ib, c, out); return true;
        default: return false;
    }
}

// Elements per block of a type with chunk dequantizers (0 for any other type).
EDGELLM_HD int chunk_block_size(ggml_type t) {
    switch (t) {
        case ggml_type::q4_0:
        case ggml_type::q4_1:
        case ggml_type::q5_0:
        case ggml_type::q5_1:
        case ggml_type::q8_0: return 32;
        case ggml_type::q2_k:
        case ggml_type::q3_k:
        case ggml_type::q4_k:
        case ggml_type::q5_k:
        case ggml_type::q6_k: return QK_K;
        default: return 0;
    }
}

}  // namespace edgellm::kernels::cuda::dq
