// Paged key/value cache for attention. One pool of fixed-size blocks (k_kv_block_size positions
// each) is shared by every sequence; a sequence owns a block table mapping its positions to pool
// blocks, so sequences of any length share the memory (continuous batching), a finished or
// cancelled sequence gives its blocks back at once, and a sequence can be rolled back
// (speculative decoding). The pool is allocated once; pages the OS has not touched cost no RSS.
//
// Automatic prefix caching (as vLLM's): a full block is identified by a hash of (its parent
// block's hash, its token ids), so a hash names a whole prefix. cache_blocks() registers a
// sequence's full blocks; attach_prefix() gives a new sequence every leading block whose hash is
// registered, shared read-only (blocks are reference-counted). A block nobody references but that
// is registered stays in the pool as cache, least recently released first out when reserve()
// needs blocks and none is free. A sequence about to write into a shared block gets a copy of it
// first (copy-on-write); into a registered block only it holds, the registration is dropped.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kernels/kernels.h"
#include "model/hparams.h"
#include "quant/ggml_type.h"

namespace edgellm::model {

constexpr int k_kv_block_shift = 4;
constexpr int64_t k_kv_block_size = int64_t{1} << k_kv_block_shift;  // positions per block (vLLM's default)

// KV element types: f16 (default), f32, and the quantized q8_0 / q4_0 (rows stored as ggml blocks;
// the model's head size must be a multiple of 32).
inline bool kv_type_supported(ggml_type t) {
    return t == ggml_type::f16 || t == ggml_type::f32 || t == ggml_type::q8_0 || t == ggml_type::q4_0;
}

class kv_cache {
public:
    // Up to n_seq sequences (ids 0..n_seq-1) of up to n_ctx positions each, elements of `type`
    // (kv_type_supported), sharing a pool of n_cells positions (rounded up to whole blocks);
    // n_cells 0: n_seq * n_ctx, so that every sequence can reach n_ctx at once.
    kv_cache(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq = 1, int64_t n_cells = 0);

    // Bytes the pool of a cache built with these arguments takes (for memory checks before loading).
    static uint64_t bytes_for(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq, int64_t n_cells);

    ggml_type type() const { return type_; }
    int64_t n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t row_elems() const { return row_elems_; }  // n_head_kv * head_dim
    // True for MLA models (hparams.mla): the values are the latent part of the cached key rows
    // (see mla_hparams), so only K rows are stored and view().v points at them too.
    bool values_in_keys() const { return values_in_keys_; }
    uint64_t size_bytes() const { return n_bytes_; }

    // Blocks of the pool: total, not owned by any sequence (free, or cached and evictable), owned
    // by sequences, and what n_pos positions take.
    int64_t n_blocks() const { return n_blocks_; }
    int64_t n_free_blocks() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
    int64_t n_used_blocks() const { return n_blocks_ - n_free_blocks(); }
    static int64_t blocks_for(int64_t n_pos) { return (n_pos + k_kv_block_size - 1) / k_kv_block_size; }
    // Blocks of the pool for these constructor arguments (n_cells 0: every sequence at n_ctx).
    static int64_t pool_blocks(int64_t n_ctx, int n_seq, int64_t n_cells);
    // Blocks `seq` still needs to hold n_pos positions (0 when it already has them), counting the
    // copy of a shared block it would write into.
    int64_t blocks_needed(int seq, int64_t n_pos) const;

    // Positions 0..seq_len(seq)-1 of sequence `seq` hold valid keys and values.
    int64_t seq_len(int seq) const;
    // Gives `seq` the blocks to hold n_pos positions (evicting unreferenced cached blocks when no
    // block is free), and makes the block holding its next position its own (copy-on-write);
    // false (and nothing taken) when the pool has too few blocks. n_pos above n_ctx is an error.
    bool reserve(int seq, int64_t n_pos);
    // Keeps the first n_pos positions of `seq` (rollback) and frees the blocks past them;
    // n_pos > seq_len is an error.
    void truncate(int seq, int64_t n_pos);
    void clear(int seq) { truncate(seq, 0); }
    void clear_all();

    // Stores one position's K and V rows ([n_head_kv][head_dim] f32 each, converted to type()); v
    // is ignored (may be null) when values_in_keys(). The position's block must be reserved. The forward pass writes all layers of a batch, then
    // marks the positions valid with extend().
    void store(int64_t il, int seq, int64_t pos, const float* k, const float* v);
    // Marks positions 0..n_pos-1 of `seq` valid; n_pos must not shrink the sequence nor pass the
    // reserved blocks.
    void extend(int seq, int64_t n_pos);

    // Layer il's keys and values of `seq`, for the attention kernels (valid until the sequence's
    // block table changes).
    kernels::kv_view view(int64_t il, int seq) const;

    // ---- automatic prefix caching (on by default) ----
    // Off: no block is registered or looked up, and every cached block is dropped (blocks of
    // finished sequences are free at once).
    void set_prefix_caching(bool on);
    bool prefix_caching() const { return caching_; }
    // Gives the empty sequence `seq` the registered blocks holding the longest block-aligned
    // prefix of `tokens`, and sets its length to that prefix, at most max_pos. Returns the
    // positions reused (0 when caching is off or nothing matched).
    int64_t attach_prefix(int seq, std::span<const int32_t> tokens, int64_t max_pos);
    // Registers the full blocks of `seq` below seq_len(seq) whose tokens are `tokens` (the
    // sequence's tokens from position 0) so later sequences can reuse them.
    void cache_blocks(int seq, std::span<const int32_t> tokens);
    // Blocks holding a registered prefix (referenced or not).
    int64_t n_cached_blocks() const { return static_cast<int64_t>(by_hash_.size()); }
    // Times `seq`'s blocks were referenced by some sequence (tests).
    int block_refs(int seq, int64_t pos) const;
    // The hash naming a block: its parent's hash (k_root_hash for the first) and its tokens.
    static constexpr uint64_t k_root_hash = 0x9e3779b97f4a7c15ull;
    static uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens);

private:
    uint8_t* row(int64_t il, int seq, int64_t pos, int kv);
    void store_row(const float* x, uint8_t* dst) const;  // converts one f32 row to type()
    void check_seq(int seq) const;
    int32_t take_block();            // a free block, else the least recently released cached one
    void release_block(int32_t b);   // drops one reference
    void unregister(int32_t b);      // forgets the block's hash (it holds no reusable prefix)
    void make_writable(int seq);     // the block holding seq's next position becomes its own
    bool write_needs_copy(int seq, int64_t n_pos) const;
    ggml_type type_;
    int64_t n_ctx_;
    int n_seq_;
    int64_t n_layer_;
    int64_t row_elems_;
    bool values_in_keys_;
    size_t row_bytes_;
    size_t half_bytes_;   // K (or V) rows of one block: k_kv_block_size rows
    size_t block_bytes_;  // one (layer, block): K rows then V rows (K rows only when values_in_keys_)
    int64_t n_blocks_;
    uint64_t n_bytes_;
    std::unique_ptr<uint8_t[]> data_;  // [n_layer][n_blocks][K,V or K][k_kv_block_size][row]
    std::vector<int64_t> seq_len_;
    std::vector<std::vector<int32_t>> tables_;  // [n_seq] block ids, position p in tables_[s][p / block]
    std::vector<int32_t> free_;                 // free block ids (a stack)

    // Prefix caching.
    bool caching_ = true;
    std::vector<int32_t> refs_;                      // [n_blocks] sequences holding the block
    std::vector<uint64_t> hash_;                     // [n_blocks] its hash when registered
    std::vector<uint64_t> parent_;                   // [n_blocks] its parent's hash when registered
    std::vector<int32_t> block_tokens_;              // [n_blocks][k_kv_block_size] when registered
    std::vector<char> registered_;                   // [n_blocks]
    std::unordered_map<uint64_t, int32_t> by_hash_;  // registered blocks
    std::list<int32_t> lru_;                         // unreferenced registered blocks, oldest first
    std::vector<std::list<int32_t>::iterator> lru_at_;  // [n_blocks] position in lru_ (when there)
    std::vector<std::vector<uint64_t>> seq_hashes_;  // [n_seq] hashes of each sequence's full leading blocks
};

}  // namespace edgellm::model
