// Q5_0 x8 layout: the Q4_0 x8 layout (packed_q4_0.cpp) plus the rows' fifth bits. Per block column
// (32 weights of each of 8 rows), 176 bytes = 8 * 22, the GGUF size:
//   d[8]    the 8 rows' f16 scales
//   qs[128] 4 chunks of 32 bytes exactly as Q4_0 x8: in chunk k, byte 4r + j holds row r's
//           element 4k + j (low nibble) and 16 + 4k + j (high nibble)
//   qh[32]  byte 4r + j: bit 2k = fifth bit of element 4k + j, bit 2k + 1 = fifth bit of element
//           16 + 4k + j of row r
// so the fifth bits of chunk k's low and high nibbles are bits 2k and 2k + 1 of one vector,
// moved to bit 4 by one shift and one and (k_q5_hbit in packed_hbits.h).
#include <cstring>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {
namespace {

constexpr size_t k_qs_at = 16, k_qh_at = 144, k_group_block_bytes = 176;

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK5_0) * k_group_block_bytes; }

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK5_0; ++b, d += k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto* blk = reinterpret_cast<const q5_0_block*>(s + size_t(r) * row_bytes) + b;
            std::memcpy(d + 2 * r, &blk->d, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(d + k_qs_at + 32 * k + 4 * r, blk->qs + 4 * k, 4);
            q5_hbits_to_x8(blk->qh, d + k_qh_at + 4 * r);
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK5_0; ++b, s += k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto* blk = reinterpret_cast<q5_0_block*>(d + size_t(r) * row_bytes) + b;
            std::memcpy(&blk->d, s + 2 * r, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(blk->qs + 4 * k, s + k_qs_at + 32 * k + 4 * r, 4);
            q5_hbits_from_x8(s + k_qh_at + 4 * r, blk->qh);
        }
    }
}

}  // namespace

void q5_hbits_to_x8(const uint8_t* qh_bytes, uint8_t* out) {
    uint32_t qh;
    std::memcpy(&qh, qh_bytes, 4);
    for (int j = 0; j < 4; ++j) {
        uint8_t h = 0;
        for (int k = 0; k < 4; ++k)
            h = uint8_t(h | (((qh >> (4 * k + j)) & 1) << (2 * k)) | (((qh >> (16 + 4 * k + j)) & 1) << (2 * k + 1)));
        out[j] = h;
    }
}

void q5_hbits_from_x8(const uint8_t* in, uint8_t* qh_bytes) {
    uint32_t qh = 0;
    for (int j = 0; j < 4; ++j) {
        const uint32_t h = in[j];
        for (int k = 0; k < 4; ++k)
            qh |= ((h >> (2 * k)) & 1) << (4 * k + j) | ((h >> (2 * k + 1)) & 1) << (16 + 4 * k + j);
    }
    std::memcpy(qh_bytes, &qh, 4);
}

const packed_layout& packed_q5_0_layout() {
    static const packed_layout l{ggml_type::q5_0, act_format::q8_32, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
