// Q2_K x8 layout. Per super-block column (256 weights of each of 8 rows), 672 bytes = 8 * 84:
//   d[8], dmin[8] the 8 rows' f16 scales
//   sc[8][16]     pair p of 16 bytes: byte 2r + i is the GGUF scale byte of sub-block 2p + i of
//                 row r (low nibble: scale, high nibble: min), as the Q3_K x8 scales are paired
//   q[2][8][32]   for half h and 4-element chunk c, byte 4r + e is GGUF qs[32h + 4c + e] of row
//                 r: bits 2j, 2j + 1 are element 128h + 32j + 4c + e (as in Q3_K x8)
#include <cstring>

#include "kernels/cpu/packed_q3_k.h"

namespace edgellm::kernels::cpu {
namespace {

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK_K) * k_q2_k_group_block_bytes; }

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK_K; ++b, d += k_q2_k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto& blk = reinterpret_cast<const q2_k_block*>(s + size_t(r) * row_bytes)[b];
            std::memcpy(d + 2 * r, &blk.d, 2);
            std::memcpy(d + 16 + 2 * r, &blk.dmin, 2);
            for (int sb = 0; sb < 16; ++sb) d[k_q2_k_scales_at + 16 * (sb / 2) + 2 * r + sb % 2] = blk.scales[sb];
            for (int h = 0; h < 2; ++h)
                for (int c = 0; c < 8; ++c) std::memcpy(d + k_q2_k_q_at + 256 * h + 32 * c + 4 * r, blk.qs + 32 * h + 4 * c, 4);
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK_K; ++b, s += k_q2_k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto& blk = reinterpret_cast<q2_k_block*>(d + size_t(r) * row_bytes)[b];
            std::memcpy(&blk.d, s + 2 * r, 2);
            std::memcpy(&blk.dmin, s + 16 + 2 * r, 2);
            for (int sb = 0; sb < 16; ++sb) blk.scales[sb] = s[k_q2_k_scales_at + 16 * (sb / 2) + 2 * r + sb % 2];
            for (int h = 0; h < 2; ++h)
                for (int c = 0; c < 8; ++c) std::memcpy(blk.qs + 32 * h + 4 * c, s + k_q2_k_q_at + 256 * h + 32 * c + 4 * r, 4);
        }
    }
}

}  // namespace

const packed_layout& packed_q2_k_layout() {
    static const packed_layout l{ggml_type::q2_k, act_format::q8_k, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
