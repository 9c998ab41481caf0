// F16 / BF16 x8 layout (the same for both: 2-byte weights, nothing but their order changes).
// Per group of 8 rows, n_cols * 16 bytes:
//   for each block of 32 columns: 8 rows x 32 weights, row r at byte 64r (512 bytes)
//   then the last n_cols % 32 columns of row 0, of row 1, ... of row 7
// so a gemm streams one contiguous group (instead of 8 rows far apart), and a register tile of
// the 8 rows x a few tokens loads each weight once per tile and each activation once per 8 rows.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/packed_f16.h"

namespace edgellm::kernels::cpu {
namespace {

size_t group_bytes(int64_t n_cols) { return size_t(n_cols) * 2 * k_pack_rows; }

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    const int64_t nb = n_cols / k_f16_block_cols, tail = n_cols % k_f16_block_cols;
    for (int64_t b = 0; b < nb; ++b)
        for (int r = 0; r < k_pack_rows; ++r, d += 2 * k_f16_block_cols)
            std::memcpy(d, s + size_t(r) * row_bytes + size_t(b) * 2 * k_f16_block_cols, 2 * k_f16_block_cols);
    for (int r = 0; r < k_pack_rows; ++r, d += 2 * tail)
        std::memcpy(d, s + size_t(r) * row_bytes + size_t(nb) * 2 * k_f16_block_cols, size_t(2 * tail));
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    const int64_t nb = n_cols / k_f16_block_cols, tail = n_cols % k_f16_block_cols;
    for (int64_t b = 0; b < nb; ++b)
        for (int r = 0; r < k_pack_rows; ++r, s += 2 * k_f16_block_cols)
            std::memcpy(d + size_t(r) * row_bytes + size_t(b) * 2 * k_f16_block_cols, s, 2 * k_f16_block_cols);
    for (int r = 0; r < k_pack_rows; ++r, s += 2 * tail)
        std::memcpy(d + size_t(r) * row_bytes + size_t(nb) * 2 * k_f16_block_cols, s, size_t(2 * tail));
}

}  // namespace

const packed_layout& packed_f16_layout() {
    static const packed_layout l{ggml_type::f16, act_format::f32, group_bytes, pack, unpack};
    return l;
}

const packed_layout& packed_bf16_layout() {
    static const packed_layout l{ggml_type::bf16, act_format::f32, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
