// Key/value cache for attention, addressed per sequence so that several sequences can share
// one cache (continuous batching) and a sequence can be rolled back (speculative decoding).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/hparams.h"
#include "quant/ggml_type.h"

namespace edgellm::model {

class kv_cache {
public:
    // Room for n_seq sequences of up to n_ctx positions each, elements of `type` (f16 or f32).
    kv_cache(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq = 1);

    ggml_type type() const { return type_; }
    int64_t n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t row_elems() const { return row_elems_; }  // n_head_kv * head_dim
    uint64_t size_bytes() const { return n_bytes_; }

    // Positions 0..seq_len(seq)-1 of sequence `seq` hold valid keys and values.
    int64_t seq_len(int seq) const;
    // Keeps the first n_pos positions of `seq` (rollback); n_pos > seq_len is an error.
    void truncate(int seq, int64_t n_pos);
    void clear(int seq) { truncate(seq, 0); }
    void clear_all();

    // Stores one position's K and V rows ([n_head_kv][head_dim] f32 each, converted to type()).
    // The forward pass writes all layers of a batch, then marks the positions valid with extend().
    void store(int64_t il, int seq, int64_t pos, const float* k, const float* v);
    // Marks positions 0..n_pos-1 of `seq` valid; n_pos must not shrink the sequence nor pass n_ctx.
    void extend(int seq, int64_t n_pos);

    // Layer il's keys / values of `seq`: [n_ctx][n_head_kv][head_dim] of type(), position-major.
    const void* keys(int64_t il, int seq) const { return base(il, seq, 0); }
    const void* values(int64_t il, int seq) const { return base(il, seq, 1); }

private:
    const uint8_t* base(int64_t il, int seq, int kv) const;
    uint8_t* base(int64_t il, int seq, int kv);
    void check_seq(int seq) const;

    ggml_type type_;
    int64_t n_ctx_;
    int n_seq_;
    int64_t n_layer_;
    int64_t row_elems_;
    size_t row_bytes_;
    size_t block_bytes_;  // one (layer, seq, K-or-V) block: n_ctx rows
    uint64_t n_bytes_;
    std::unique_ptr<uint8_t[]> data_;  // [n_layer][n_seq][K,V][n_ctx][row]
    std::vector<int64_t> seq_len_;
};

}  // namespace edgellm::model
