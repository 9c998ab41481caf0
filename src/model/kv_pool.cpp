// A pool of paged KV blocks: free list, reference counts, block tables, prefix-cache registry and
// LRU of unreferenced cached blocks (see kv_pool.h).
#include "model/kv_pool.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace edgellm::model::detail {

void kv_block_pool::init(int64_t n_layers, int64_t n_blocks, size_t block_bytes, int n_seq, int64_t block_positions) {
    n_layers_ = n_layers;
    n_blocks_ = n_blocks;
    block_bytes_ = block_bytes;
    block_positions_ = block_positions;
    n_bytes_ = static_cast<uint64_t>(block_bytes) * static_cast<uint64_t>(n_layers) * static_cast<uint64_t>(n_blocks);
    // Left uninitialised on purpose: only rows below seq_len are ever read, and untouched pages
    // cost no resident memory.
    data_ = std::make_unique_for_overwrite<uint8_t[]>(n_bytes_);
    tables_.assign(static_cast<size_t>(n_seq), {});
    lo_.assign(static_cast<size_t>(n_seq), 0);
    // Lowest ids on top of the stack: a small workload touches the start of the pool only.
    free_.resize(static_cast<size_t>(n_blocks));
    for (int64_t i = 0; i < n_blocks; ++i) free_[static_cast<size_t>(i)] = static_cast<int32_t>(n_blocks - 1 - i);
    const size_t nb = static_cast<size_t>(n_blocks);
    refs_.assign(nb, 0);
    hash_.assign(nb, 0);
    parent_.assign(nb, 0);
    block_tokens_.assign(nb * static_cast<size_t>(block_positions), 0);
    registered_.assign(nb, 0);
    lru_at_.resize(nb);
    by_hash_.clear();
    lru_.clear();
}

int32_t kv_block_pool::take() {
    int32_t b;
    if (!free_.empty()) {
        b = free_.back();
        free_.pop_back();
    } else {
        if (lru_.empty()) throw error("KV cache: no block left to take");  // callers check first
        b = lru_.front();
        lru_.pop_front();
        unregister(b);
    }
    refs_[static_cast<size_t>(b)] = 1;
    return b;
}

void kv_block_pool::release(int32_t b) {
    const size_t i = static_cast<size_t>(b);
    if (--refs_[i] > 0) return;
    if (registered_[i])
        lru_at_[i] = lru_.insert(lru_.end(), b);
    else
        free_.push_back(b);
}

void kv_block_pool::unregister(int32_t b) {
    const size_t i = static_cast<size_t>(b);
    if (!registered_[i]) return;
    registered_[i] = 0;
    auto it = by_hash_.find(hash_[i]);
    if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
}

bool kv_block_pool::needs_copy(int seq, int64_t len, int64_t n_pos, int shift) const {
    const auto& table = tables_[static_cast<size_t>(seq)];
    const size_t ib = static_cast<size_t>(len >> shift);
    return n_pos > len && ib < table.size() && table[ib] != k_no_block && refs_[static_cast<size_t>(table[ib])] > 1;
}

void kv_block_pool::make_writable(int seq, int64_t len, int shift) {
    auto& table = tables_[static_cast<size_t>(seq)];
    const size_t ib = static_cast<size_t>(len >> shift);
    if (ib >= table.size() || table[ib] == k_no_block) return;
    const int32_t b = table[ib];
    if (refs_[static_cast<size_t>(b)] > 1) {
        const int32_t copy = take();
        for (int64_t il = 0; il < n_layers_; ++il) {
            uint8_t* layer = layer_data(il);
            std::memcpy(layer + static_cast<size_t>(copy) * block_bytes_, layer + static_cast<size_t>(b) * block_bytes_,
                        block_bytes_);
        }
        release(b);
        table[ib] = copy;
    } else {
        unregister(b);  // its rows past len are about to change
    }
}

void kv_block_pool::grow(int seq, int64_t n) {
    auto& table = tables_[static_cast<size_t>(seq)];
    while (static_cast<int64_t>(table.size()) < n) table.push_back(take());
}

void kv_block_pool::shrink(int seq, int64_t n) {
    auto& table = tables_[static_cast<size_t>(seq)];
    // Released from the end: the sequence's last blocks are evicted before its first ones.
    while (static_cast<int64_t>(table.size()) > n) {
        if (table.back() != k_no_block) release(table.back());
        table.pop_back();
    }
    int64_t& lo = lo_[static_cast<size_t>(seq)];
    lo = std::min(lo, n);
    if (n == 0) lo = 0;
}

void kv_block_pool::release_below(int seq, int64_t first) {
    auto& table = tables_[static_cast<size_t>(seq)];
    int64_t& lo = lo_[static_cast<size_t>(seq)];
    first = std::min(first, static_cast<int64_t>(table.size()));
    for (; lo < first; ++lo) {
        int32_t& e = table[static_cast<size_t>(lo)];
        if (e != k_no_block) release(e);
        e = k_no_block;
    }
}

void kv_block_pool::attach(int seq, std::span<const int32_t> blocks, int64_t first) {
    auto& table = tables_[static_cast<size_t>(seq)];
    table.assign(blocks.size(), k_no_block);
    for (size_t j = static_cast<size_t>(first); j < blocks.size(); ++j) {
        const size_t b = static_cast<size_t>(blocks[j]);
        if (refs_[b]++ == 0) lru_.erase(lru_at_[b]);
        table[j] = blocks[j];
    }
    lo_[static_cast<size_t>(seq)] = std::min<int64_t>(first, static_cast<int64_t>(blocks.size()));
}

int32_t kv_block_pool::find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const {
    auto it = by_hash_.find(hash);
    if (it == by_hash_.end()) return -1;
    const size_t b = static_cast<size_t>(it->second);
    const size_t bs = static_cast<size_t>(block_positions_);
    if (parent_[b] != parent || !std::equal(tokens.begin(), tokens.end(), block_tokens_.begin() + b * bs)) return -1;
    return it->second;
}

void kv_block_pool::register_block(int32_t b, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
    const size_t i = static_cast<size_t>(b);
    if (registered_[i] || by_hash_.count(hash)) return;  // already cached (here or in another block)
    registered_[i] = 1;
    hash_[i] = hash;
    parent_[i] = parent;
    std::copy(tokens.begin(), tokens.end(), block_tokens_.begin() + i * static_cast<size_t>(block_positions_));
    by_hash_.emplace(hash, b);
}

void kv_block_pool::drop_cache() {
    for (int32_t b : lru_) {
        unregister(b);
        free_.push_back(b);
    }
    lru_.clear();
    for (int64_t b = 0; b < n_blocks_; ++b) unregister(static_cast<int32_t>(b));
}

}  // namespace edgellm::model::detail
