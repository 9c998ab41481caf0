// Paged KV cache: a block pool with a free list and per-sequence block tables; rows are
// converted to the cache type on store. Registered (hash-named) blocks are shared between
// sequences by reference count and kept, when unreferenced, in an LRU list until evicted.
#include "model/kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm::model {

kv_cache::kv_cache(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq, int64_t n_cells)
    : type_(type),
      n_ctx_(n_ctx),
      n_seq_(n_seq),
      n_layer_(hp.n_layer),
      row_elems_(hp.kv_dim()),
      values_in_keys_(hp.mla.enabled()) {
    if (!kv_type_supported(type))
        throw usage_error(fmt::format("KV cache type {} is not supported (use f16, f32, q8_0 or q4_0)", type_name(type)));
    if (type_traits(type).is_quantized && hp.head_dim % type_traits(type).block_size != 0)
        throw usage_error(fmt::format("a {} KV cache needs a head size that is a multiple of {}; this model's is {}{} "
                                      "(use --kv-type f16)",
                                      type_name(type), type_traits(type).block_size, hp.head_dim,
                                      hp.mla.enabled() ? " (MLA's cached row: kv_lora_rank + rope dims)" : ""));
    if (n_ctx <= 0) throw usage_error(fmt::format("KV cache context must be positive, got {}", n_ctx));
    if (n_seq <= 0) throw usage_error(fmt::format("KV cache needs at least one sequence, got {}", n_seq));
    if (n_cells < 0) throw usage_error(fmt::format("KV cache size must be positive, got {}", n_cells));
    n_blocks_ = pool_blocks(n_ctx, n_seq, n_cells);
    if (n_blocks_ > INT32_MAX)
        throw usage_error(fmt::format("KV cache of {} blocks is too large", n_blocks_));
    row_bytes_ = row_size(type, row_elems_);
    half_bytes_ = row_bytes_ * static_cast<size_t>(k_kv_block_size);
    block_bytes_ = static_cast<size_t>(hp.kv_rows_per_token()) * half_bytes_;
    n_bytes_ = static_cast<uint64_t>(block_bytes_) * static_cast<uint64_t>(n_layer_) * static_cast<uint64_t>(n_blocks_);
    // Left uninitialised on purpose: only rows below seq_len are ever read, and untouched pages
    // cost no resident memory.
    data_ = std::make_unique_for_overwrite<uint8_t[]>(n_bytes_);
    seq_len_.assign(static_cast<size_t>(n_seq), 0);
    tables_.resize(static_cast<size_t>(n_seq));
    // Lowest ids on top of the stack: a small workload touches the start of the pool only.
    free_.resize(static_cast<size_t>(n_blocks_));
    for (int64_t i = 0; i < n_blocks_; ++i) free_[static_cast<size_t>(i)] = static_cast<int32_t>(n_blocks_ - 1 - i);
    const size_t nb = static_cast<size_t>(n_blocks_);
    refs_.assign(nb, 0);
    hash_.assign(nb, 0);
    parent_.assign(nb, 0);
    block_tokens_.assign(nb * static_cast<size_t>(k_kv_block_size), 0);
    registered_.assign(nb, 0);
    lru_at_.resize(nb);
    seq_hashes_.resize(static_cast<size_t>(n_seq));
}

int64_t kv_cache::pool_blocks(int64_t n_ctx, int n_seq, int64_t n_cells) {
    return n_cells > 0 ? blocks_for(n_cells) : static_cast<int64_t>(n_seq) * blocks_for(n_ctx);
}

uint64_t kv_cache::bytes_for(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq, int64_t n_cells) {
    return static_cast<uint64_t>(pool_blocks(n_ctx, n_seq, n_cells)) * static_cast<uint64_t>(k_kv_block_size) *
           static_cast<uint64_t>(hp.kv_rows_per_token()) * row_size(type, hp.kv_dim()) *
           static_cast<uint64_t>(hp.n_layer);
}

void kv_cache::check_seq(int seq) const {
    if (seq < 0 || seq >= n_seq_)
        throw error(fmt::format("sequence id {} out of range (KV cache holds {} sequences)", seq, n_seq_));
}

int64_t kv_cache::seq_len(int seq) const {
    check_seq(seq);
    return seq_len_[static_cast<size_t>(seq)];
}

// True when growing `seq` to n_pos positions writes into a block another sequence holds too.
bool kv_cache::write_needs_copy(int seq, int64_t n_pos) const {
    const auto& table = tables_[static_cast<size_t>(seq)];
    const int64_t len = seq_len_[static_cast<size_t>(seq)];
    const size_t ib = static_cast<size_t>(len >> k_kv_block_shift);
    return n_pos > len && ib < table.size() && refs_[static_cast<size_t>(table[ib])] > 1;
}

int64_t kv_cache::blocks_needed(int seq, int64_t n_pos) const {
    check_seq(seq);
    const int64_t have = static_cast<int64_t>(tables_[static_cast<size_t>(seq)].size());
    return std::max<int64_t>(0, blocks_for(n_pos) - have) + (write_needs_copy(seq, n_pos) ? 1 : 0);
}

int32_t kv_cache::take_block() {
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

void kv_cache::release_block(int32_t b) {
    const size_t i = static_cast<size_t>(b);
    if (--refs_[i] > 0) return;
    if (registered_[i])
        lru_at_[i] = lru_.insert(lru_.end(), b);
    else
        free_.push_back(b);
}

void kv_cache::unregister(int32_t b) {
    const size_t i = static_cast<size_t>(b);
    if (!registered_[i]) return;
    registered_[i] = 0;
    auto it = by_hash_.find(hash_[i]);
    if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
}

void kv_cache::make_writable(int seq) {
    auto& table = tables_[static_cast<size_t>(seq)];
    const size_t ib = static_cast<size_t>(seq_len_[static_cast<size_t>(seq)] >> k_kv_block_shift);
    if (ib >= table.size()) return;
    const int32_t b = table[ib];
    if (refs_[static_cast<size_t>(b)] > 1) {
        const int32_t copy = take_block();
        for (int64_t il = 0; il < n_layer_; ++il) {
            uint8_t* layer = data_.get() + static_cast<size_t>(il) * static_cast<size_t>(n_blocks_) * block_bytes_;
            std::memcpy(layer + static_cast<size_t>(copy) * block_bytes_, layer + static_cast<size_t>(b) * block_bytes_,
                        block_bytes_);
        }
        release_block(b);
        table[ib] = copy;
    } else {
        unregister(b);  // its rows past seq_len are about to change
    }
}

bool kv_cache::reserve(int seq, int64_t n_pos) {
    check_seq(seq);
    if (n_pos < 0 || n_pos > n_ctx_)
        throw error(fmt::format("sequence {}: {} positions do not fit the context of {}", seq, n_pos, n_ctx_));
    const int64_t need = blocks_needed(seq, n_pos);
    if (need > n_free_blocks()) return false;
    if (n_pos > seq_len_[static_cast<size_t>(seq)]) make_writable(seq);
    auto& table = tables_[static_cast<size_t>(seq)];
    while (static_cast<int64_t>(table.size()) < blocks_for(n_pos)) table.push_back(take_block());
    return true;
}

void kv_cache::truncate(int seq, int64_t n_pos) {
    check_seq(seq);
    int64_t& len = seq_len_[static_cast<size_t>(seq)];
    if (n_pos < 0 || n_pos > len)
        throw error(fmt::format("cannot truncate sequence {} of length {} to {} positions", seq, len, n_pos));
    len = n_pos;
    auto& table = tables_[static_cast<size_t>(seq)];
    const size_t keep = static_cast<size_t>(blocks_for(n_pos));
    // Released from the end: the sequence's last blocks are evicted before its first ones.
    while (table.size() > keep) {
        release_block(table.back());
        table.pop_back();
    }
    auto& hashes = seq_hashes_[static_cast<size_t>(seq)];
    hashes.resize(std::min(hashes.size(), static_cast<size_t>(n_pos >> k_kv_block_shift)));
}

uint64_t kv_cache::block_hash(uint64_t parent, std::span<const int32_t> tokens) {
    // splitmix64 steps over the parent hash and each token: 64 bits, well mixed; a hit is also
    // checked against the block's stored tokens and parent.
    auto mix = [](uint64_t z) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    uint64_t h = mix(parent + k_root_hash);
    for (int32_t t : tokens) h = mix(h + k_root_hash + static_cast<uint32_t>(t));
    return h;
}

void kv_cache::set_prefix_caching(bool on) {
    caching_ = on;
    if (on) return;
    for (int32_t b : lru_) {
        unregister(b);
        free_.push_back(b);
    }
    lru_.clear();
    for (int64_t b = 0; b < n_blocks_; ++b) unregister(static_cast<int32_t>(b));
    for (auto& h : seq_hashes_) h.clear();
}

int64_t kv_cache::attach_prefix(int seq, std::span<const int32_t> tokens, int64_t max_pos) {
    check_seq(seq);
    if (seq_len_[static_cast<size_t>(seq)] != 0 || !tables_[static_cast<size_t>(seq)].empty())
        throw error(fmt::format("attach_prefix: sequence {} is not empty", seq));
    if (!caching_) return 0;
    max_pos = std::min(max_pos, n_ctx_);
    std::vector<int32_t> hit;
    std::vector<uint64_t> hashes;
    uint64_t parent = k_root_hash;
    const size_t bs = static_cast<size_t>(k_kv_block_size);
    for (size_t i = 0; (i + 1) * bs <= tokens.size() && static_cast<int64_t>(i * bs) < max_pos; ++i) {
        const auto block = tokens.subspan(i * bs, bs);
        const uint64_t h = block_hash(parent, block);
        auto it = by_hash_.find(h);
        if (it == by_hash_.end()) break;
        const size_t b = static_cast<size_t>(it->second);
        if (parent_[b] != parent || !std::equal(block.begin(), block.end(), block_tokens_.begin() + b * bs)) break;
        hit.push_back(it->second);
        hashes.push_back(h);
        parent = h;
    }
    const int64_t n = std::min(static_cast<int64_t>(hit.size()) * k_kv_block_size, std::max<int64_t>(max_pos, 0));
    auto& table = tables_[static_cast<size_t>(seq)];
    for (size_t j = 0; j < static_cast<size_t>(blocks_for(n)); ++j) {
        const size_t b = static_cast<size_t>(hit[j]);
        if (refs_[b]++ == 0) lru_.erase(lru_at_[b]);
        table.push_back(hit[j]);
    }
    hashes.resize(static_cast<size_t>(n >> k_kv_block_shift));
    seq_hashes_[static_cast<size_t>(seq)] = std::move(hashes);
    seq_len_[static_cast<size_t>(seq)] = n;
    return n;
}

void kv_cache::cache_blocks(int seq, std::span<const int32_t> tokens) {
    check_seq(seq);
    if (!caching_) return;
    auto& hashes = seq_hashes_[static_cast<size_t>(seq)];
    const auto& table = tables_[static_cast<size_t>(seq)];
    const size_t bs = static_cast<size_t>(k_kv_block_size);
    const size_t n_full = std::min(static_cast<size_t>(seq_len_[static_cast<size_t>(seq)] >> k_kv_block_shift),
                                   tokens.size() / bs);
    for (size_t i = hashes.size(); i < n_full; ++i) {
        const uint64_t parent = i == 0 ? k_root_hash : hashes[i - 1];
        const auto block = tokens.subspan(i * bs, bs);
        const uint64_t h = block_hash(parent, block);
        hashes.push_back(h);
        const size_t b = static_cast<size_t>(table[i]);
        if (registered_[b] || by_hash_.count(h)) continue;  // already cached (here or in another block)
        registered_[b] = 1;
        hash_[b] = h;
        parent_[b] = parent;
        std::copy(block.begin(), block.end(), block_tokens_.begin() + b * bs);
        by_hash_.emplace(h, static_cast<int32_t>(b));
    }
}

int kv_cache::block_refs(int seq, int64_t pos) const {
    check_seq(seq);
    const auto& table = tables_[static_cast<size_t>(seq)];
    const size_t ib = static_cast<size_t>(pos >> k_kv_block_shift);
    return ib < table.size() ? refs_[static_cast<size_t>(table[ib])] : 0;
}

void kv_cache::clear_all() {
    for (int s = 0; s < n_seq_; ++s) clear(s);
}

uint8_t* kv_cache::row(int64_t il, int seq, int64_t pos, int kv) {
    const auto& table = tables_[static_cast<size_t>(seq)];
    const size_t ib = static_cast<size_t>(pos >> k_kv_block_shift);
    if (ib >= table.size())
        throw error(fmt::format("KV position {} of sequence {} has no block reserved", pos, seq));
    const size_t block = static_cast<size_t>(il) * static_cast<size_t>(n_blocks_) + static_cast<size_t>(table[ib]);
    return data_.get() + block * block_bytes_ + static_cast<size_t>(kv) * half_bytes_ +
           static_cast<size_t>(pos & (k_kv_block_size - 1)) * row_bytes_;
}

void kv_cache::store(int64_t il, int seq, int64_t pos, const float* k, const float* v) {
    check_seq(seq);
    if (pos < 0 || pos >= n_ctx_)
        throw error(fmt::format("KV position {} is outside the context of {} positions", pos, n_ctx_));
    if (il < 0 || il >= n_layer_) throw error(fmt::format("KV layer {} out of range", il));
    store_row(k, row(il, seq, pos, 0));
    if (!values_in_keys_) store_row(v, row(il, seq, pos, 1));
}

void kv_cache::store_row(const float* x, uint8_t* dst) const {
    if (type_ == ggml_type::f32) {
        std::memcpy(dst, x, row_bytes_);
    } else if (type_ != ggml_type::f16) {
        // Quantized rows: blocks never straddle heads (head_dim is a multiple of the block).
        quantize_row(type_, x, dst, row_elems_);
    } else {
        auto* h = reinterpret_cast<fp16_bits*>(dst);
        for (int64_t i = 0; i < row_elems_; ++i) h[i] = fp32_to_fp16(x[i]);
    }
}

void kv_cache::extend(int seq, int64_t n_pos) {
    check_seq(seq);
    int64_t& len = seq_len_[static_cast<size_t>(seq)];
    const int64_t reserved = static_cast<int64_t>(tables_[static_cast<size_t>(seq)].size()) * k_kv_block_size;
    if (n_pos < len || n_pos > n_ctx_ || n_pos > reserved)
        throw error(fmt::format("cannot extend sequence {} of length {} to {} positions (context {}, {} reserved)", seq,
                                len, n_pos, n_ctx_, reserved));
    len = n_pos;
}

kernels::kv_view kv_cache::view(int64_t il, int seq) const {
    check_seq(seq);
    kernels::kv_view v;
    const uint8_t* layer = data_.get() + static_cast<size_t>(il) * static_cast<size_t>(n_blocks_) * block_bytes_;
    v.k = layer;
    v.v = values_in_keys_ ? layer : layer + half_bytes_;
    v.type = type_;
    v.row_bytes = row_bytes_;
    v.blocks = tables_[static_cast<size_t>(seq)].data();
    v.block_shift = k_kv_block_shift;
    v.block_stride = block_bytes_;
    return v;
}

}  // namespace edgellm::model
