// Q4_1 and Q5_1 x8 layouts: the Q4_0 x8 layout (packed_q4_0.cpp) plus the rows' mins (and for
// Q5_1 the fifth bits as Q5_0 x8 holds them, packed_q5_0.cpp). Per block column (32 weights of
// each of 8 rows), the GGUF size, 160 bytes = 8 * 20 (Q4_1) or 192 = 8 * 24 (Q5_1):
//   d[8]    the 8 rows' f16 scales (one 128-bit load -> 8 floats)
//   m[8]    the 8 rows' f16 mins, likewise
//   qs[128] 4 chunks of 32 bytes exactly as Q4_0 x8: in chunk k, byte 4r + j holds row r's
//           element 4k + j (low nibble) and 16 + 4k + j (high nibble)
//   qh[32]  Q5_1 only: byte 4r + j, bit 2k / 2k + 1 = fifth bit of element 4k + j / 16 + 4k + j
// x = d*q + m, so a block's dot with an activation block (scale dy, integer sum s of its int8
// values) is d*dy*sum(q*y) + m*dy*s, the same two terms as the per-row dots
// (legacy_dots_x86.h): the gemms share the Q4_0 ones' code with no offset and add the min term
// from the activation block's sum.
#include <cstring>
#include <type_traits>

#include "kernels/cpu/packed.h"

namespace edgellm::kernels::cpu {
namespace {

constexpr size_t k_m_at = 16, k_qs_at = 32, k_qh_at = 160;

template <class B>
constexpr bool has_qh = std::is_same_v<B, q5_1_block>;

template <class B>
constexpr size_t group_block_bytes = has_qh<B> ? 192 : 160;

template <class B>
size_t group_bytes(int64_t n_cols) {
    return size_t(n_cols / 32) * group_block_bytes<B>;
}

template <class B>
void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / 32; ++b, d += group_block_bytes<B>) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto* blk = reinterpret_cast<const B*>(s + size_t(r) * row_bytes) + b;
            std::memcpy(d + 2 * r, &blk->d, 2);
            std::memcpy(d + k_m_at + 2 * r, &blk->m, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(d + k_qs_at + 32 * k + 4 * r, blk->qs + 4 * k, 4);
            if constexpr (has_qh<B>) q5_hbits_to_x8(blk->qh, d + k_qh_at + 4 * r);
        }
    }
}

template <class B>
void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t b = 0; b < n_cols / 32; ++b, s += group_block_bytes<B>) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto* blk = reinterpret_cast<B*>(d + size_t(r) * row_bytes) + b;
            std::memcpy(&blk->d, s + 2 * r, 2);
            std::memcpy(&blk->m, s + k_m_at + 2 * r, 2);
            for (int k = 0; k < 4; ++k) std::memcpy(blk->qs + 4 * k, s + k_qs_at + 32 * k + 4 * r, 4);
            if constexpr (has_qh<B>) q5_hbits_from_x8(s + k_qh_at + 4 * r, blk->qh);
        }
    }
}

}  // namespace

const packed_layout& packed_q4_1_layout() {
    static const packed_layout l{ggml_type::q4_1, act_format::q8_32, group_bytes<q4_1_block>, pack<q4_1_block>,
                                 unpack<q4_1_block>};
    return l;
}

const packed_layout& packed_q5_1_layout() {
    static const packed_layout l{ggml_type::q5_1, act_format::q8_32, group_bytes<q5_1_block>, pack<q5_1_block>,
                                 unpack<q5_1_block>};
    return l;
}

}  // namespace edgellm::kernels::cpu
