// Q8_0 x8 layout. Per block column (32 weights of each of 8 rows), 272 bytes (= 8 GGUF blocks):
//   d[8]    the 8 rows' f16 scales (one 128-bit load -> 8 floats)
//   qs[256] 4 chunks of 64 bytes; in chunk m, byte 8*r + j is qs[8m + j] of row r.
// An 8-byte broadcast of the activations then meets 8 consecutive weights of every row: a 512-bit
// load covers all 8 rows (two 32-bit lanes per row), a 256-bit load 4 rows.
#include <cstring>

#include "kernels/cpu/packed_q8_0.h"

namespace edgellm::kernels::cpu {
namespace {

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK8_0) * k_q8_0_group_block_bytes; }

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK8_0; ++b, d += k_q8_0_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto* blk = reinterpret_cast<const q8_0_block*>(s + size_t(r) * row_bytes) + b;
            std::memcpy(d + 2 * r, &blk->d, 2);
            for (int m = 0; m < 4; ++m) std::memcpy(d + 16 + 64 * m + 8 * r, blk->qs + 8 * m, 8);
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK8_0; ++b, s += k_q8_0_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto* blk = reinterpret_cast<q8_0_block*>(d + size_t(r) * row_bytes) + b;
            std::memcpy(&blk->d, s + 2 * r, 2);
            for (int m = 0; m < 4; ++m) std::memcpy(blk->qs + 8 * m, s + 16 + 64 * m + 8 * r, 8);
        }
    }
}

}  // namespace

const packed_layout& packed_q8_0_layout() {
    static const packed_layout l{ggml_type::q8_0, act_format::q8_32, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
