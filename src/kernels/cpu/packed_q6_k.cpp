// Q6_K x8 layout. Per super-block column (256 weights of each of 8 rows), 1680 bytes = 8 * 210:
//   d[8]        the 8 rows' f16 scales (one 128-bit load -> 8 floats)
//   sc[128]     8 pairs of 16 bytes; in pair p, byte 2r + i is scale 2p + i of row r, so a
//               sign-extending load gives i16 lanes (2r, 2r+1) = row r's scales of sub-blocks
//               2p, 2p+1 (paired with a 4-byte broadcast of the activations' bsums)
//   q[16][96]   per 16-element sub-block s, three 32-byte chunks c0, c1, h; byte 4r + j of each
//               belongs to row r:  c0: low nibble  = low 4 bits of element 16s + j,
//                                        high nibble = low 4 bits of element 16s + 4 + j
//                                  c1: the same for elements 16s + 8 + j and 16s + 12 + j
//                                  h:  bits 2k..2k+1 = high 2 bits of element 16s + 4k + j
// so 4 consecutive weights (0..63) of every row unpack into one vector, meeting a 4-byte
// broadcast of the activations.
#include <cstring>

#include "kernels/cpu/packed_q6_k.h"

namespace edgellm::kernels::cpu {
namespace {

constexpr size_t k_scales_at = 16;
constexpr size_t k_q_at = 16 + 128;

size_t group_bytes(int64_t n_cols) { return size_t(n_cols / QK_K) * k_q6_k_group_block_bytes; }

// The 256 stored values (0..63) of a GGUF Q6_K block in element order.
void block_values(const q6_k_block& b, uint8_t* q) {
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b.ql + 64 * h;
        const uint8_t* qh = b.qh + 32 * h;
        uint8_t* o = q + 128 * h;
        for (int l = 0; l < 32; ++l) {
            o[l] = uint8_t((ql[l] & 0xF) | ((qh[l] & 3) << 4));
            o[l + 32] = uint8_t((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
            o[l + 64] = uint8_t((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            o[l + 96] = uint8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
}

// The inverse of block_values: every bit of ql and qh is written.
void set_block_values(const uint8_t* q, q6_k_block& b) {
    for (int h = 0; h < 2; ++h) {
        uint8_t* ql = b.ql + 64 * h;
        uint8_t* qh = b.qh + 32 * h;
        const uint8_t* v = q + 128 * h;
        for (int l = 0; l < 32; ++l) {
            ql[l] = uint8_t((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
            ql[l + 32] = uint8_t((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
            qh[l] = uint8_t((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
        }
    }
}

void pack(const void* src, size_t row_bytes, int64_t n_cols, void* dst) {
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    uint8_t q[QK_K];
    for (int64_t b = 0; b < n_cols / QK_K; ++b, d += k_q6_k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            const auto& blk = reinterpret_cast<const q6_k_block*>(s + size_t(r) * row_bytes)[b];
            std::memcpy(d + 2 * r, &blk.d, 2);
            for (int sb = 0; sb < QK_K / 16; ++sb)
                d[k_scales_at + 16 * (sb / 2) + 2 * r + sb % 2] = uint8_t(blk.scales[sb]);
            block_values(blk, q);
            for (int sb = 0; sb < QK_K / 16; ++sb) {
                uint8_t* c = d + k_q_at + 96 * sb + 4 * r;
                const uint8_t* v = q + 16 * sb;
                for (int j = 0; j < 4; ++j) {
                    c[j] = uint8_t((v[j] & 0xF) | ((v[4 + j] & 0xF) << 4));
                    c[32 + j] = uint8_t((v[8 + j] & 0xF) | ((v[12 + j] & 0xF) << 4));
                    c[64 + j] = uint8_t((v[j] >> 4) | ((v[4 + j] >> 4) << 2) | ((v[8 + j] >> 4) << 4) | ((v[12 + j] >> 4) << 6));
                }
            }
        }
    }
}

void unpack(const void* group, int64_t n_cols, void* dst, size_t row_bytes) {
    const auto* s = static_cast<const uint8_t*>(group);
    auto* d = static_cast<uint8_t*>(dst);
    uint8_t q[QK_K];
    for (int64_t b = 0; b < n_cols / QK_K; ++b, s += k_q6_k_group_block_bytes) {
        for (int r = 0; r < k_pack_rows; ++r) {
            auto& blk = reinterpret_cast<q6_k_block*>(d + size_t(r) * row_bytes)[b];
            std::memcpy(&blk.d, s + 2 * r, 2);
            for (int sb = 0; sb < QK_K / 16; ++sb) blk.scales[sb] = int8_t(s[k_scales_at + 16 * (sb / 2) + 2 * r + sb % 2]);
            for (int sb = 0; sb < QK_K / 16; ++sb) {
                const uint8_t* c = s + k_q_at + 96 * sb + 4 * r;
                uint8_t* v = q + 16 * sb;
                for (int j = 0; j < 4; ++j) {
                    const int hb = c[64 + j];
                    v[j] = uint8_t((c[j] & 0xF) | ((hb & 3) << 4));
                    v[4 + j] = uint8_t((c[j] >> 4) | (((hb >> 2) & 3) << 4));
                    v[8 + j] = uint8_t((c[32 + j] & 0xF) | (((hb >> 4) & 3) << 4));
                    v[12 + j] = uint8_t((c[32 + j] >> 4) | (((hb >> 6) & 3) << 4));
                }
            }
            set_block_values(q, blk);
        }
    }
}

}  // namespace

const packed_layout& packed_q6_k_layout() {
    static const packed_layout l{ggml_type::q6_k, act_format::q8_k, group_bytes, pack, unpack};
    return l;
}

}  // namespace edgellm::kernels::cpu
