// Q4_K x8 layout. Per super-block column (256 weights of each of 8 rows), 1184 bytes:
//   d[8], dmin[8]  the 8 rows' f16 scales (one 128-bit load each -> 8 floats)
//   sc[8][8]       byte 8s + r: 6-bit scale of sub-block s (32 elements) of row r
//   mn[8][8]       byte 8s + r: 6-bit min of sub-block s of row r
//   q[4][8][32]    for each 64-element half-pair j and 4-element chunk c, byte 4r + e of the
//                  32-byte vector belongs to row r: low nibble = element 64j + 4c + e (sub-block
//                  2j), high nibble = element 64j + 32 + 4c + e (sub-block 2j + 1)
// so one 32-byte load gives 4 consecutive weights of every row for two sub-blocks, meeting two
// 4-byte broadcasts of the activations. The 12-byte packed scales of a GGUF block hold exactly
// the 8 + 8 six-bit values, so unpack restores every byte.
// Q5_K x8 (same code, Q5 = true): the same 1184 bytes from the Q5_K block's d, dmin, scales and qs
// (its qs pair elements exactly as Q4_K's), then qh[8][32]: for chunk c, byte 4r + e is GGUF
// qh[4c + e] of row r, whose bit 2j is the fifth bit of element 64j + 4c + e and bit 2j + 1 that
// of element 64j + 32 + 4c + e, i.e. of the low / high nibble of q[j][c] byte 4r + e.
#include <cstring>
#include <type_traits>

#include "kernels/cpu/packed_q4_k.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu {
namespace {

template <bool Q5>
size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK_K) * (Q5 ? k_q5_k_group_block_bytes : k_q4_k_group_block_bytes); }

// Inverse of k4_scale_min over all 8 sub-blocks.
void set_scales(const uint8_t* sc, const uint8_t* m, uint8_t* q) {
    for (int j = 0; j < 4; ++j) {
        q[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = uint8_t((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
}

template <bool Q5>
void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    using block = std::conditional_t<Q5, q5_k_block, q4_k_block>;
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK_K; ++b, d += group_bytes<Q5>(QK_K)) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto& blk = reinterpret_cast<const block*>(s + size_t(r) * row_bytes)[b];
            if constexpr (Q5)
                for (int c = 0; c < 8; ++c) std::memcpy(d + k_q5_k_qh_at + 32 * c + 4 * r, blk.qh + 4 * c, 4);
            std::memcpy(d + 2 * r, &blk.d, 2);
            std::memcpy(d + 16 + 2 * r, &blk.dmin, 2);
            for (int sb = 0; sb < 8; ++sb)
                k4_scale_min(sb, blk.scales, d + k_q4_k_scales_at + 8 * sb + r, d + k_q4_k_mins_at + 8 * sb + r);
            // GGUF: qs[32j + l] low nibble = element 64j + l, high nibble = element 64j + 32 + l,
            // the same pairing as the packed bytes, so bytes move whole.
            for (int j = 0; j < 4; ++j)
                for (int c = 0; c < 8; ++c)
                    std::memcpy(d + k_q4_k_q_at + 256 * j + 32 * c + 4 * r, blk.qs + 32 * j + 4 * c, 4);
        }
    }
}

template <bool Q5>
void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    using block = std::conditional_t<Q5, q5_k_block, q4_k_block>;
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK_K; ++b, s += group_bytes<Q5>(QK_K)) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto& blk = reinterpret_cast<block*>(d + size_t(r) * row_bytes)[b];
            if constexpr (Q5)
                for (int c = 0; c < 8; ++c) std::memcpy(blk.qh + 4 * c, s + k_q5_k_qh_at + 32 * c + 4 * r, 4);
            std::memcpy(&blk.d, s + 2 * r, 2);
            std::memcpy(&blk.dmin, s + 16 + 2 * r, 2);
            uint8_t sc[8], m[8];
            for (int sb = 0; sb < 8; ++sb) {
                sc[sb] = s[k_q4_k_scales_at + 8 * sb + r];
                m[sb] = s[k_q4_k_mins_at + 8 * sb + r];
            }
            set_scales(sc, m, blk.scales);
            for (int j = 0; j < 4; ++j)
                for (int c = 0; c < 8; ++c)
                    std::memcpy(blk.qs + 32 * j + 4 * c, s + k_q4_k_q_at + 256 * j + 32 * c + 4 * r, 4);
        }
    }
}

}  // namespace

const packed_layout& packed_q4_k_layout() {
    static const packed_layout l{ggml_type::q4_k, act_format::q8_k, group_bytes<false>, pack<false>, unpack<false>};
    return l;
}

const packed_layout& packed_q5_k_layout() {
    static const packed_layout l{ggml_type::q5_k, act_format::q8_k, group_bytes<true>, pack<true>, unpack<true>};
    return l;
}

}  // namespace edgellm::kernels::cpu
