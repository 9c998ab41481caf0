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
//
// Window-sized KV (the default; --swa-full turns it off): the layers with a sliding window
// (hparams.is_swa_layer: Gemma 2/3, Mistral) get their own pool, sized per sequence for the window
// plus one step (k_kv_swa_step positions) plus a rollback slack (k_kv_swa_slack), as llama.cpp's
// SWA cache. A sequence's table in that pool keeps an entry per block, but blocks older than
// every future query's window (less the slack) are released (entry -1, never read: attention's
// kv_first excludes them). Rolling back further than the slack (truncate) is refused with an
// error (can_truncate tells first). Prefix caching registers the window pool's blocks under the
// same hashes; a prefix is reused only as far as both pools still hold what it needs.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kernels/kernels.h"
#include "model/hparams.h"
#include "model/kv_pool.h"
#include "quant/ggml_type.h"

namespace edgellm::model {

constexpr int k_kv_block_shift = 4;
constexpr int64_t k_kv_block_size = int64_t{1} << k_kv_block_shift;  // positions per block (vLLM's default)
// Window-sized KV: positions one forward step writes per sequence at most (the forward pass
// splits longer inputs into steps of this size; llama.cpp's default ubatch), and positions a
// sequence may be rolled back by beyond its last step (speculative drafts).
constexpr int64_t k_kv_swa_step = 512;
constexpr int64_t k_kv_swa_slack = 64;

// KV element types: f16 (default), f32, and the quantized q8_0 / q4_0 (rows stored as ggml blocks;
// the model's head size must be a multiple of 32).
inline bool kv_type_supported(ggml_type t) {
    return t == ggml_type::f16 || t == ggml_type::f32 || t == ggml_type::q8_0 || t == ggml_type::q4_0;
}

class kv_cache {
public:
    // Up to n_seq sequences (ids 0..n_seq-1) of up to n_ctx positions each, elements of `type`
    // (kv_type_supported), sharing a pool of n_cells positions (rounded up to whole blocks);
    // n_cells 0: n_seq * n_ctx, so that every sequence can reach n_ctx at once. The sliding-window
    // layers get a window-sized pool of their own (n_seq * swa_seq_blocks) unless swa_full.
    kv_cache(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq = 1, int64_t n_cells = 0,
             bool swa_full = false);

    // Bytes the pools of a cache built with these arguments take (for memory checks before loading).
    static uint64_t bytes_for(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq, int64_t n_cells,
                              bool swa_full = false);
    // Bytes one block (k_kv_block_size positions) of one layer takes.
    static uint64_t block_bytes_for(const model_hparams& hp, ggml_type type);
    // True when a cache for hp keeps window-sized pools for its sliding-window layers.
    static bool windowed_for(const model_hparams& hp, bool swa_full);
    // Blocks a sliding-window layer of `window` positions keeps per sequence: the window, one
    // step, the rollback slack and one block of alignment; at most the whole context.
    static int64_t swa_seq_blocks(int64_t window, int64_t n_ctx);

    ggml_type type() const { return type_; }
    int64_t n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t row_elems() const { return row_elems_; }  // n_head_kv * head_dim
    // True for MLA models (hparams.mla): the values are the latent part of the cached key rows
    // (see mla_hparams), so only K rows are stored and view().v points at them too.
    bool values_in_keys() const { return values_in_keys_; }
    uint64_t size_bytes() const { return full_.size_bytes() + swa_.size_bytes(); }
    // Window-sized: the sliding-window layers keep only about their window (0 window otherwise).
    bool windowed() const { return window_ > 0; }
    int64_t window() const { return window_; }

    // Blocks of the full-attention pool (the one admission counts; the window pool is sized so
    // that every sequence always finds its blocks there): total, not owned by any sequence (free,
    // or cached and evictable), owned by sequences, and what n_pos positions take.
    int64_t n_blocks() const { return full_.n_blocks(); }
    int64_t n_free_blocks() const { return full_.n_free(); }
    int64_t n_used_blocks() const { return n_blocks() - n_free_blocks(); }
    // The window pool's blocks (0 when not windowed).
    int64_t n_swa_blocks() const { return swa_.n_blocks(); }
    int64_t n_free_swa_blocks() const { return swa_.n_free(); }
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
    // false (and nothing taken) when a pool has too few blocks. n_pos above n_ctx is an error.
    // Window pool: the blocks below the window of the next query (less the slack) are released,
    // and blocks are given for at most k_kv_swa_step positions past seq_len (the forward pass
    // reserves again before each step).
    bool reserve(int seq, int64_t n_pos);
    // Keeps the first n_pos positions of `seq` (rollback) and frees the blocks past them;
    // n_pos > seq_len, or a rollback past what the window pool still holds, is an error.
    void truncate(int seq, int64_t n_pos);
    // Whether truncate(seq, n_pos) is allowed.
    bool can_truncate(int seq, int64_t n_pos) const;
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
    // block table changes). On a window-sized layer, blocks before the window are absent.
    kernels::kv_view view(int64_t il, int seq) const;

    // ---- automatic prefix caching (on by default) ----
    // Off: no block is registered or looked up, and every cached block is dropped (blocks of
    // finished sequences are free at once).
    void set_prefix_caching(bool on);
    bool prefix_caching() const { return caching_; }
    // Gives the empty sequence `seq` the registered blocks holding the longest block-aligned
    // prefix of `tokens` (that the window pool, when there is one, can also supply), and sets its
    // length to that prefix, at most max_pos. Returns the positions reused (0 when caching is off
    // or nothing matched).
    int64_t attach_prefix(int seq, std::span<const int32_t> tokens, int64_t max_pos);
    // Registers the full blocks of `seq` below seq_len(seq) whose tokens are `tokens` (the
    // sequence's tokens from position 0) so later sequences can reuse them.
    void cache_blocks(int seq, std::span<const int32_t> tokens);
    // Blocks of the full-attention pool holding a registered prefix (referenced or not).
    int64_t n_cached_blocks() const { return full_.n_registered(); }
    // Times `seq`'s block holding `pos` is referenced by some sequence (tests): in the
    // full-attention pool, or in layer il's pool; 0 when it holds no block there.
    int block_refs(int seq, int64_t pos) const;
    int layer_block_refs(int64_t il, int seq, int64_t pos) const;
    // The hash naming a block: its parent's hash (k_root_hash for the first) and its tokens.
    static constexpr uint64_t k_root_hash = 0x9e3779b97f4a7c15ull;
    static uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens);

private:
    const detail::kv_block_pool& pool_of(int64_t il) const { return layer_swa_[static_cast<size_t>(il)] ? swa_ : full_; }
    uint8_t* row(int64_t il, int seq, int64_t pos, int kv);
    void store_row(const float* x, uint8_t* dst) const;  // converts one f32 row to type()
    void check_seq(int seq) const;
    // First window-pool block a sequence of length len must keep (the next query's window, less
    // the rollback slack).
    int64_t swa_keep_from(int64_t len) const;
    ggml_type type_;
    int64_t n_ctx_;
    int n_seq_;
    int64_t n_layer_;
    int64_t row_elems_;
    bool values_in_keys_;
    size_t row_bytes_;
    size_t half_bytes_;   // K (or V) rows of one block: k_kv_block_size rows
    int64_t window_ = 0;  // > 0: the sliding-window layers live in swa_
    std::vector<char> layer_swa_;       // [n_layer] the layer's pool is swa_
    std::vector<int64_t> layer_index_;  // [n_layer] the layer's index within its pool
    detail::kv_block_pool full_;        // full-attention layers (every layer when not windowed)
    detail::kv_block_pool swa_;         // sliding-window layers (empty when not windowed)
    std::vector<int64_t> seq_len_;

    bool caching_ = true;
    std::vector<std::vector<uint64_t>> seq_hashes_;  // [n_seq] hashes of each sequence's full leading blocks
};

}  // namespace edgellm::model
