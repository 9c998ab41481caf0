// One pool of paged KV blocks for a set of layers (model::kv_cache's building block): the block
// memory, a free list, reference counts, per-sequence block tables, and the prefix-cache registry
// (hash -> block) with the LRU list of unreferenced registered blocks. kv_cache keeps one pool for
// the full-attention layers and, for a window-sized cache, a second one for the sliding-window
// layers; both run this same code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

namespace edgellm::model::detail {

class kv_block_pool {
public:
    static constexpr int32_t k_no_block = -1;  // a table entry whose block was released (out of the window)

    // n_layers layers of n_blocks blocks of block_bytes each (n_layers may be 0: bookkeeping only),
    // tables for n_seq sequences, block_positions token ids kept per registered block.
    void init(int64_t n_layers, int64_t n_blocks, size_t block_bytes, int n_seq, int64_t block_positions);

    int64_t n_layers() const { return n_layers_; }
    int64_t n_blocks() const { return n_blocks_; }
    int64_t n_free() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
    uint64_t size_bytes() const { return n_bytes_; }
    size_t block_bytes() const { return block_bytes_; }
    uint8_t* layer_data(int64_t layer) const {
        return data_.get() + static_cast<size_t>(layer) * static_cast<size_t>(n_blocks_) * block_bytes_;
    }

    const std::vector<int32_t>& table(int seq) const { return tables_[static_cast<size_t>(seq)]; }
    // First table index of `seq` that still holds a block (entries below it are k_no_block).
    int64_t first_held(int seq) const { return lo_[static_cast<size_t>(seq)]; }
    int refs(int32_t b) const { return refs_[static_cast<size_t>(b)]; }

    // True when writing position `len` of `seq` (growing it) lands in a block another sequence holds.
    bool needs_copy(int seq, int64_t len, int64_t n_pos, int shift) const;
    // The block holding position `len` of `seq` becomes its own (copied when shared, unregistered
    // when registered: its rows past len are about to change).
    void make_writable(int seq, int64_t len, int shift);
    // Appends taken blocks until the table has n entries (the caller checked n_free()).
    void grow(int seq, int64_t n);
    // Releases the table's entries from n on (the last one first).
    void shrink(int seq, int64_t n);
    // Releases the entries below `first` (they become k_no_block).
    void release_below(int seq, int64_t first);
    // Sets an empty sequence's table: k_no_block below `first`, then blocks[first..] (one more
    // reference each).
    void attach(int seq, std::span<const int32_t> blocks, int64_t first);

    // Prefix-cache registry.
    int32_t find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;  // -1: none
    // Registers the block (no-op when it or the hash is already registered).
    void register_block(int32_t b, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);
    int64_t n_registered() const { return static_cast<int64_t>(by_hash_.size()); }
    // Forgets every registration; unreferenced cached blocks become free.
    void drop_cache();

private:
    int32_t take();                // a free block, else the least recently released cached one
    void release(int32_t b);       // drops one reference
    void unregister(int32_t b);    // forgets the block's hash
    int64_t n_layers_ = 0;
    int64_t n_blocks_ = 0;
    size_t block_bytes_ = 0;
    int64_t block_positions_ = 0;
    uint64_t n_bytes_ = 0;
    std::unique_ptr<uint8_t[]> data_;  // [n_layers][n_blocks][block_bytes]
    std::vector<std::vector<int32_t>> tables_;  // [n_seq] block ids (k_no_block: released)
    std::vector<int64_t> lo_;                   // [n_seq] first held table index
    std::vector<int32_t> free_;                 // free block ids (a stack)
    std::vector<int32_t> refs_;                 // [n_blocks] sequences holding the block
    std::vector<uint64_t> hash_;                // [n_blocks] its hash when registered
    std::vector<uint64_t> parent_;              // [n_blocks] its parent's hash when registered
    std::vector<int32_t> block_tokens_;         // [n_blocks][block_positions] when registered
    std::vector<char> registered_;              // [n_blocks]
    std::unordered_map<uint64_t, int32_t> by_hash_;     // registered blocks
    std::list<int32_t> lru_;                            // unreferenced registered blocks, oldest first
    std::vector<std::list<int32_t>::iterator> lru_at_;  // [n_blocks] position in lru_ (when there)
};

}  // namespace edgellm::model::detail
