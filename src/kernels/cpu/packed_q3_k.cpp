// Q3_K x8 layout. Per super-block column (256 weights of each of 8 rows), 912 bytes:
//   d[8]        the 8 rows' f16 scales
//   sc[8][16]   pair p of 16 bytes: byte 2r + i is the signed scale (-32..31) of sub-block
//               2p + i (16 elements) of row r, as in the Q6_K x8 layout
//   q[2][8][32] for half h and 4-element chunk c, byte 4r + e is GGUF qs[32h + 4c + e] of row r:
//               bits 2j, 2j + 1 are the low 2 bits of element 128h + 32j + 4c + e
//   hm[8][32]   for chunk c, byte 4r + e is GGUF hmask[4c + e] of row r: bit 4h + j is the
//               third bit of element 128h + 32j + 4c + e
// so one shift-and-mask of a q vector and one bit of an hm vector give 4 consecutive 3-bit
// weights (0..7, the -4 offset applied through the activations' bsums) of every row, meeting a
// 4-byte broadcast of the activations; the 4 chunks c = 4i..4i+3 make sub-block 8h + 2j + i.
#include <cstring>

#include "kernels/cpu/packed_q3_k.h"
#include "quant/quant.h"

namespace edgellm::kernels::cpu {
namespace {

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK_K) * k_q3_k_group_block_bytes; }

// Inverse of q3_k_scales: 16 values -32..31 -> the 12 packed bytes (every bit written).
void set_scales(const int8_t* sc, uint8_t* q) {
    std::memset(q, 0, K_SCALE_SIZE);
    for (int j = 0; j < 16; ++j) {
        const int l = sc[j] + 32;
        q[j % 8] = uint8_t(q[j % 8] | ((l & 0xF) << (j < 8 ? 0 : 4)));
        q[8 + j % 4] = uint8_t(q[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
    }
}

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK_K; ++b, d += k_q3_k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto& blk = reinterpret_cast<const q3_k_block*>(s + size_t(r) * row_bytes)[b];
            std::memcpy(d + 2 * r, &blk.d, 2);
            int8_t sc[16];
            q3_k_scales(blk.scales, sc);
            for (int sb = 0; sb < 16; ++sb) d[k_q3_k_scales_at + 16 * (sb / 2) + 2 * r + sb % 2] = uint8_t(sc[sb]);
            for (int h = 0; h < 2; ++h)
                for (int c = 0; c < 8; ++c) std::memcpy(d + k_q3_k_q_at + 256 * h + 32 * c + 4 * r, blk.qs + 32 * h + 4 * c, 4);
            for (int c = 0; c < 8; ++c) std::memcpy(d + k_q3_k_h_at + 32 * c + 4 * r, blk.hmask + 4 * c, 4);
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK_K; ++b, s += k_q3_k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto& blk = reinterpret_cast<q3_k_block*>(d + size_t(r) * row_bytes)[b];
            std::memcpy(&blk.d, s + 2 * r, 2);
            int8_t sc[16];
            for (int sb = 0; sb < 16; ++sb) sc[sb] = int8_t(s[k_q3_k_scales_at + 16 * (sb / 2) + 2 * r + sb % 2]);
            set_scales(sc, blk.scales);
            for (int h = 0; h < 2; ++h)
                for (int c = 0; c < 8; ++c) std::memcpy(blk.qs + 32 * h + 4 * c, s + k_q3_k_q_at + 256 * h + 32 * c + 4 * r, 4);
            for (int c = 0; c < 8; ++c) std::memcpy(blk.hmask + 4 * c, s + k_q3_k_h_at + 32 * c + 4 * r, 4);
        }
    }
}

}  // namespace

const packed_layout& packed_q3_k_layout() {
    static const packed_layout l{ggml_type::q3_k, act_format::q8_k, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
