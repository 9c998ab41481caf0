// NEON + dotprod gemm over Q6_K x8 groups (packed_q6_k.cpp). Per 16-element sub-block, the three
// 32-byte chunks (c0, c1, h) unpack into 4 vectors per 4 rows of 6-bit weights (elements 4k..4k+3
// of each row in vector k); 4 sdots by lanes 0..3 of the sub-block's 16 activations give each
// row's sub-block dot, seeded with -32 * bsum (the offset of the stored values), and one
// multiply-add by the rows' scales accumulates it. i32 bounds: a sub-block dot is at most
// 16 * 64 * 128 = 131072, times |scale| <= 128 and 16 sub-blocks: 2^28.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/packed_neon.h"
#include "kernels/cpu/packed_q6_k.h"
#include "kernels/cpu/packed_tiles.h"

namespace edgellm::kernels::cpu {
namespace {

constexpr size_t k_scales_at = 16;
constexpr size_t k_q_at = 16 + 128;

struct q6_vectors {
    int8x16_t v[4];  // v[k]: elements 4k..4k+3 of the sub-block for 4 rows
};

// One half (rows 4h..4h+3) of a sub-block's chunks at q.
inline q6_vectors unpack(const uint8_t* q, int h) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    const uint8x16_t c0 = vld1q_u8(q + 16 * h), c1 = vld1q_u8(q + 32 + 16 * h), hb = vld1q_u8(q + 64 + 16 * h);
    q6_vectors o;
    o.v[0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(c0, m4), vandq_u8(vshlq_n_u8(hb, 4), m30)));
    o.v[1] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(c0, 4), vandq_u8(vshlq_n_u8(hb, 2), m30)));
    o.v[2] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(c1, m4), vandq_u8(hb, m30)));
    o.v[3] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(c1, 4), vandq_u8(vshrq_n_u8(hb, 2), m30)));
    return o;
}

inline int32x4_t sub_block_dot(int32x4_t seed, const q6_vectors& w, int8x16_t x) {
    seed = vdotq_laneq_s32(seed, w.v[0], x, 0);
    seed = vdotq_laneq_s32(seed, w.v[1], x, 1);
    seed = vdotq_laneq_s32(seed, w.v[2], x, 2);
    return vdotq_laneq_s32(seed, w.v[3], x, 3);
}

template <int T>
void gemm_tile(const uint8_t* g, const q8_k_block* const* a, int64_t nb, float* y, size_t y_stride) {
    float32x4_t acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b, g += k_q6_k_group_block_bytes) {
        int32x4_t si[T][2];
        for (int t = 0; t < T; ++t) si[t][0] = si[t][1] = vdupq_n_s32(0);
        const uint8_t* q = g + k_q_at;
        for (int p = 0; p < 8; ++p) {
            // Byte 2r + i of pair p is row r's scale of sub-block 2p + i.
            const int8x16_t sp = vld1q_s8(reinterpret_cast<const int8_t*>(g + k_scales_at + 16 * p));
            const int8x16_t by_sub[2] = {vuzp1q_s8(sp, sp), vuzp2q_s8(sp, sp)};
            for (int i = 0; i < 2; ++i, q += 96) {
                const int s = 2 * p + i;
                const int16x8_t sc16 = vmovl_s8(vget_low_s8(by_sub[i]));
                const int32x4_t sc_lo = vmovl_s16(vget_low_s16(sc16)), sc_hi = vmovl_s16(vget_high_s16(sc16));
                const q6_vectors w_lo = unpack(q, 0), w_hi = unpack(q, 1);
                for (int t = 0; t < T; ++t) {
                    const int8x16_t x = vld1q_s8(a[t][b].qs + 16 * s);
                    const int32x4_t seed = vdupq_n_s32(-32 * a[t][b].bsums[s]);
                    si[t][0] = vmlaq_s32(si[t][0], sub_block_dot(seed, w_lo, x), sc_lo);
                    si[t][1] = vmlaq_s32(si[t][1], sub_block_dot(seed, w_hi, x), sc_hi);
                }
            }
        }
        const float32x4_t d_lo = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(g))));
        const float32x4_t d_hi = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(g) + 4)));
        for (int t = 0; t < T; ++t) {
            acc[t][0] = vfmaq_f32(acc[t][0], vcvtq_f32_s32(si[t][0]), vmulq_n_f32(d_lo, a[t][b].d));
            acc[t][1] = vfmaq_f32(acc[t][1], vcvtq_f32_s32(si[t][1]), vmulq_n_f32(d_hi, a[t][b].d));
        }
    }
    for (int t = 0; t < T; ++t) {
        vst1q_f32(y + size_t(t) * y_stride, acc[t][0]);
        vst1q_f32(y + size_t(t) * y_stride + 4, acc[t][1]);
    }
}

}  // namespace

void packed_q6_k_gemm_neon(const void* group, const void* act, size_t act_stride, int64_t n_tokens, int64_t n_cols,
                           float* y, size_t y_stride) {
    const auto* g = static_cast<const uint8_t*>(group);
    const int64_t nb = n_cols / QK_K;
    for_each_token_tile<4, q8_k_block>(act, act_stride, n_tokens, y, y_stride, [&](auto width, const q8_k_block* const* a, float* yt) {
        gemm_tile<decltype(width)::value>(g, a, nb, yt, y_stride);
    });
}

}  // namespace edgellm::kernels::cpu
#endif  // __aarch64__
