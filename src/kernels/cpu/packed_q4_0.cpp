// Q4_0 x8 layout. Per block column (32 weights of each of 8 rows), 144 bytes:
//   d[8]    the 8 rows' f16 scales (one 128-bit load -> 8 floats)
//   qs[128] 4 chunks of 32 bytes; in chunk k, byte 4*r + j is byte 4*k + j of row r's qs, so its
//           low nibble is element 4k+j and its high nibble element 16+4k+j of row r.
// A 4-byte broadcast of the activations then meets 4 consecutive weights of every row at once.
#include <cstring>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {
namespace {

constexpr size_t k_group_block_bytes = 16 + 128;

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK4_0) * k_group_block_bytes; }

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK4_0; ++b, d += k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto* blk = reinterpret_cast<const q4_0_block*>(s + size_t(r) * row_bytes) + b;
            std::memcpy(d + 2 * r, &blk->d, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(d + 16 + 32 * k + 4 * r, blk->qs + 4 * k, 4);
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK4_0; ++b, s += k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto* blk = reinterpret_cast<q4_0_block*>(d + size_t(r) * row_bytes) + b;
            std::memcpy(&blk->d, s + 2 * r, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(blk->qs + 4 * k, s + 16 + 32 * k + 4 * r, 4);
        }
    }
}

}  // namespace

const packed_layout& packed_q4_0_layout() {
    static const packed_layout l{ggml_type::q4_0, act_format::q8_32, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
