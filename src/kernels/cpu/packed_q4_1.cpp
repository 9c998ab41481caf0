// Q4_1 x8 layout: the Q4_0 x8 layout (packed_q4_0.cpp) plus the rows' mins. Per block column (32
// weights of each of 8 rows), 160 bytes = 8 * 20, the GGUF size:
//   d[8]    the 8 rows' f16 scales (one 128-bit load -> 8 floats)
//   m[8]    the 8 rows' f16 mins, likewise
//   qs[128] 4 chunks of 32 bytes exactly as Q4_0 x8: in chunk k, byte 4r + j holds row r's
//           element 4k + j (low nibble) and 16 + 4k + j (high nibble)
// x = d*q + m, so a block's dot with an activation block (scale dy, integer sum s) is
// d*dy*sum(q*y) + m*dy*s: the gemms share the Q4_0 ones' code with no -8 offset and add the min
// term from the activation block's sum.
#include <cstring>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {
namespace {

constexpr size_t k_m_at = 16, k_qs_at = 32, k_group_block_bytes = 160;

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK4_1) * k_group_block_bytes; }

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK4_1; ++b, d += k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto* blk = reinterpret_cast<const q4_1_block*>(s + size_t(r) * row_bytes) + b;
            std::memcpy(d + 2 * r, &blk->d, 2);
            std::memcpy(d + k_m_at + 2 * r, &blk->m, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(d + k_qs_at + 32 * k + 4 * r, blk->qs + 4 * k, 4);
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / QK4_1; ++b, s += k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto* blk = reinterpret_cast<q4_1_block*>(d + size_t(r) * row_bytes) + b;
            std::memcpy(&blk->d, s + 2 * r, 2);
            std::memcpy(&blk->m, s + k_m_at + 2 * r, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(blk->qs + 4 * k, s + k_qs_at + 32 * k + 4 * r, 4);
        }
    }
}

}  // namespace

const packed_layout& packed_q4_1_layout() {
    static const packed_layout l{ggml_type::q4_1, act_format::q8_32, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
