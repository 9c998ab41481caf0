// Paged KV cache: one block pool (kv_pool.h) for the full-attention layers and, window-sized,
// one for the sliding-window layers; rows are converted to the cache type on store. Registered
// (hash-named) blocks are shared between sequences by reference count and kept, when
// unreferenced, in an LRU list until evicted.
#include "model/kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace edgellm::model {

kv_cache::kv_cache(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq, int64_t n_cells, bool swa_full)
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
    const int64_t n_blocks = pool_blocks(n_ctx, n_seq, n_cells);
    if (n_blocks > INT32_MAX) throw usage_error(fmt::format("KV cache of {} blocks is too large", n_blocks));
    row_bytes_ = row_size(type, row_elems_);
    half_bytes_ = row_bytes_ * static_cast<size_t>(k_kv_block_size);
    const size_t block_bytes = static_cast<size_t>(block_bytes_for(hp, type));
    window_ = windowed_for(hp, swa_full) ? hp.n_swa : 0;
    layer_swa_.assign(static_cast<size_t>(n_layer_), 0);
    layer_index_.assign(static_cast<size_t>(n_layer_), 0);
    int64_t n_full = 0, n_swa = 0;
    for (int64_t il = 0; il < n_layer_; ++il) {
        const bool swa = window_ > 0 && hp.is_swa_layer(il);
        layer_swa_[static_cast<size_t>(il)] = swa;
        layer_index_[static_cast<size_t>(il)] = swa ? n_swa++ : n_full++;
    }
    full_.init(n_full, n_blocks, block_bytes, n_seq, k_kv_block_size);
    swa_.init(n_swa, window_ > 0 ? int64_t{n_seq} * swa_seq_blocks(window_, n_ctx) : 0, block_bytes, n_seq,
              k_kv_block_size);
    seq_len_.assign(static_cast<size_t>(n_seq), 0);
    seq_hashes_.resize(static_cast<size_t>(n_seq));
}

int64_t kv_cache::pool_blocks(int64_t n_ctx, int n_seq, int64_t n_cells) {
    return n_cells > 0 ? blocks_for(n_cells) : static_cast<int64_t>(n_seq) * blocks_for(n_ctx);
}

bool kv_cache::windowed_for(const model_hparams& hp, bool swa_full) {
    if (swa_full || hp.n_swa <= 0 || !hp.causal) return false;
    for (int64_t il = 0; il < hp.n_layer; ++il)
        if (hp.is_swa_layer(il)) return true;
    return false;
}

int64_t kv_cache::swa_seq_blocks(int64_t window, int64_t n_ctx) {
    return std::min(blocks_for(n_ctx), blocks_for(window + k_kv_swa_slack + k_kv_swa_step - 1) + 1);
}

uint64_t kv_cache::block_bytes_for(const model_hparams& hp, ggml_type type) {
    return static_cast<uint64_t>(k_kv_block_size) * static_cast<uint64_t>(hp.kv_rows_per_token()) *
           row_size(type, hp.kv_dim());
}

uint64_t kv_cache::bytes_for(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq, int64_t n_cells,
                             bool swa_full) {
    const bool windowed = windowed_for(hp, swa_full);
    uint64_t blocks = 0;  // layer-blocks over every layer
    for (int64_t il = 0; il < hp.n_layer; ++il)
        blocks += static_cast<uint64_t>(windowed && hp.is_swa_layer(il)
                                            ? int64_t{n_seq} * swa_seq_blocks(hp.n_swa, n_ctx)
                                            : pool_blocks(n_ctx, n_seq, n_cells));
    return blocks * block_bytes_for(hp, type);
}

void kv_cache::check_seq(int seq) const {
    if (seq < 0 || seq >= n_seq_)
        throw error(fmt::format("sequence id {} out of range (KV cache holds {} sequences)", seq, n_seq_));
}

int64_t kv_cache::seq_len(int seq) const {
    check_seq(seq);
    return seq_len_[static_cast<size_t>(seq)];
}

int64_t kv_cache::swa_keep_from(int64_t len) const {
    return std::max<int64_t>(0, len + 1 - window_ - k_kv_swa_slack) >> k_kv_block_shift;
}

int64_t kv_cache::blocks_needed(int seq, int64_t n_pos) const {
    check_seq(seq);
    const int64_t len = seq_len_[static_cast<size_t>(seq)];
    const int64_t have = static_cast<int64_t>(full_.table(seq).size());
    return std::max<int64_t>(0, blocks_for(n_pos) - have) + (full_.needs_copy(seq, len, n_pos, k_kv_block_shift) ? 1 : 0);
}

bool kv_cache::reserve(int seq, int64_t n_pos) {
    check_seq(seq);
    if (n_pos < 0 || n_pos > n_ctx_)
        throw error(fmt::format("sequence {}: {} positions do not fit the context of {}", seq, n_pos, n_ctx_));
    const int64_t len = seq_len_[static_cast<size_t>(seq)];
    if (blocks_needed(seq, n_pos) > full_.n_free()) return false;
    int64_t swa_pos = 0;
    if (window_ > 0) {
        // Blocks no future query reads go back first (harmless whatever follows).
        if (n_pos > len) swa_.release_below(seq, swa_keep_from(len));
        swa_pos = std::min(n_pos, len + k_kv_swa_step);
        const int64_t have = static_cast<int64_t>(swa_.table(seq).size());
        const int64_t need = std::max<int64_t>(0, blocks_for(swa_pos) - have) +
                             (swa_.needs_copy(seq, len, swa_pos, k_kv_block_shift) ? 1 : 0);
        if (need > swa_.n_free()) return false;
    }
    if (n_pos > len) {
        full_.make_writable(seq, len, k_kv_block_shift);
        if (window_ > 0) swa_.make_writable(seq, len, k_kv_block_shift);
    }
    full_.grow(seq, blocks_for(n_pos));
    if (window_ > 0) swa_.grow(seq, blocks_for(swa_pos));
    return true;
}

bool kv_cache::can_truncate(int seq, int64_t n_pos) const {
    check_seq(seq);
    if (n_pos < 0 || n_pos > seq_len_[static_cast<size_t>(seq)]) return false;
    if (window_ == 0 || n_pos == 0) return true;
    // The next query (at n_pos) reads from n_pos + 1 - window on.
    return (std::max<int64_t>(0, n_pos + 1 - window_) >> k_kv_block_shift) >= swa_.first_held(seq);
}

void kv_cache::truncate(int seq, int64_t n_pos) {
    check_seq(seq);
    int64_t& len = seq_len_[static_cast<size_t>(seq)];
    if (n_pos < 0 || n_pos > len)
        throw error(fmt::format("cannot truncate sequence {} of length {} to {} positions", seq, len, n_pos));
    if (!can_truncate(seq, n_pos))
        throw error(fmt::format("cannot roll sequence {} back from {} to {} positions: its sliding-window layers keep "
                                "only the last {} positions plus {} of slack, and position {} is gone (--swa-full "
                                "keeps every position)",
                                seq, len, n_pos, window_, k_kv_swa_slack, std::max<int64_t>(0, n_pos + 1 - window_)));
    len = n_pos;
    full_.shrink(seq, blocks_for(n_pos));
    if (window_ > 0) swa_.shrink(seq, blocks_for(n_pos));
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
    full_.drop_cache();
    swa_.drop_cache();
    for (auto& h : seq_hashes_) h.clear();
}

int64_t kv_cache::attach_prefix(int seq, std::span<const int32_t> tokens, int64_t max_pos) {
    check_seq(seq);
    if (seq_len_[static_cast<size_t>(seq)] != 0 || !full_.table(seq).empty() || !swa_.table(seq).empty())
        throw error(fmt::format("attach_prefix: sequence {} is not empty", seq));
    if (!caching_) return 0;
    max_pos = std::min(max_pos, n_ctx_);
    std::vector<int32_t> hit, swa_hit;
    std::vector<uint64_t> hashes;
    uint64_t parent = k_root_hash;
    const size_t bs = static_cast<size_t>(k_kv_block_size);
    for (size_t i = 0; (i + 1) * bs <= tokens.size() && static_cast<int64_t>(i * bs) < max_pos; ++i) {
        const auto block = tokens.subspan(i * bs, bs);
        const uint64_t h = block_hash(parent, block);
        const int32_t b = full_.find(h, parent, block);
        if (b < 0) break;
        hit.push_back(b);
        if (window_ > 0) swa_hit.push_back(swa_.find(h, parent, block));
        hashes.push_back(h);
        parent = h;
    }
    int64_t n = std::min(static_cast<int64_t>(hit.size()) * k_kv_block_size, std::max<int64_t>(max_pos, 0));
    int64_t swa_first = 0;
    if (window_ > 0) {
        // The longest reusable length whose next query's window the window pool holds whole:
        // n itself, else a shorter block-aligned one.
        auto covered = [&](int64_t len) {
            swa_first = std::max<int64_t>(0, len + 1 - window_) >> k_kv_block_shift;
            for (int64_t j = swa_first; j < blocks_for(len); ++j)
                if (swa_hit[static_cast<size_t>(j)] < 0) return false;
            return true;
        };
        if (!covered(n)) {
            // A missing block at j rules out every length whose window reaches j.
            int64_t last_missing = -1;
            for (int64_t j = 0; j < blocks_for(n); ++j)
                if (swa_hit[static_cast<size_t>(j)] < 0) last_missing = j;
            n = std::min((n >> k_kv_block_shift) << k_kv_block_shift, last_missing * k_kv_block_size);
            while (n > 0 && !covered(n)) n -= k_kv_block_size;
            if (n <= 0) {
                n = 0;
                swa_first = 0;
            }
        }
    }
    const size_t nb = static_cast<size_t>(blocks_for(n));
    full_.attach(seq, std::span<const int32_t>(hit).first(nb), 0);
    if (window_ > 0) swa_.attach(seq, std::span<const int32_t>(swa_hit).first(nb), swa_first);
    hashes.resize(static_cast<size_t>(n >> k_kv_block_shift));
    seq_hashes_[static_cast<size_t>(seq)] = std::move(hashes);
    seq_len_[static_cast<size_t>(seq)] = n;
    return n;
}

void kv_cache::cache_blocks(int seq, std::span<const int32_t> tokens) {
    check_seq(seq);
    if (!caching_) return;
    auto& hashes = seq_hashes_[static_cast<size_t>(seq)];
    const auto& table = full_.table(seq);
    const auto& swa_table = swa_.table(seq);
    const size_t bs = static_cast<size_t>(k_kv_block_size);
    const size_t n_full = std::min(static_cast<size_t>(seq_len_[static_cast<size_t>(seq)] >> k_kv_block_shift),
                                   tokens.size() / bs);
    for (size_t i = hashes.size(); i < n_full; ++i) {
        const uint64_t parent = i == 0 ? k_root_hash : hashes[i - 1];
        const auto block = tokens.subspan(i * bs, bs);
        const uint64_t h = block_hash(parent, block);
        hashes.push_back(h);
        full_.register_block(table[i], h, parent, block);
        // The window pool's block, unless it was released already (out of the window).
        if (i < swa_table.size() && swa_table[i] != detail::kv_block_pool::k_no_block)
            swa_.register_block(swa_table[i], h, parent, block);
    }
}

int kv_cache::block_refs(int seq, int64_t pos) const {
    check_seq(seq);
    const auto& table = full_.table(seq);
    const size_t ib = static_cast<size_t>(pos >> k_kv_block_shift);
    return ib < table.size() ? full_.refs(table[ib]) : 0;
}

int kv_cache::layer_block_refs(int64_t il, int seq, int64_t pos) const {
    check_seq(seq);
    if (il < 0 || il >= n_layer_) throw error(fmt::format("KV layer {} out of range", il));
    const detail::kv_block_pool& pool = pool_of(il);
    const auto& table = pool.table(seq);
    const size_t ib = static_cast<size_t>(pos >> k_kv_block_shift);
    return ib < table.size() && table[ib] != detail::kv_block_pool::k_no_block ? pool.refs(table[ib]) : 0;
}

void kv_cache::clear_all() {
    for (int s = 0; s < n_seq_; ++s) clear(s);
}

uint8_t* kv_cache::row(int64_t il, int seq, int64_t pos, int kv) {
    const detail::kv_block_pool& pool = pool_of(il);
    const auto& table = pool.table(seq);
    const size_t ib = static_cast<size_t>(pos >> k_kv_block_shift);
    if (ib >= table.size() || table[ib] == detail::kv_block_pool::k_no_block)
        throw error(fmt::format("KV position {} of sequence {} has no block reserved{}", pos, seq,
                                ib < table.size() ? " (it is outside the sliding window kept for this layer)" : ""));
    return pool.layer_data(layer_index_[static_cast<size_t>(il)]) + static_cast<size_t>(table[ib]) * pool.block_bytes() +
           static_cast<size_t>(kv) * half_bytes_ + static_cast<size_t>(pos & (k_kv_block_size - 1)) * row_bytes_;
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
    int64_t reserved = static_cast<int64_t>(full_.table(seq).size()) * k_kv_block_size;
    if (window_ > 0) reserved = std::min(reserved, static_cast<int64_t>(swa_.table(seq).size()) * k_kv_block_size);
    if (n_pos < len || n_pos > n_ctx_ || n_pos > reserved)
        throw error(fmt::format("cannot extend sequence {} of length {} to {} positions (context {}, {} reserved)", seq,
                                len, n_pos, n_ctx_, reserved));
    len = n_pos;
}

kernels::kv_view kv_cache::view(int64_t il, int seq) const {
    check_seq(seq);
    const detail::kv_block_pool& pool = pool_of(il);
    kernels::kv_view v;
    const uint8_t* layer = pool.layer_data(layer_index_[static_cast<size_t>(il)]);
    v.k = layer;
    v.v = values_in_keys_ ? layer : layer + half_bytes_;
    v.type = type_;
    v.row_bytes = row_bytes_;
    v.blocks = pool.table(seq).data();
    v.block_shift = k_kv_block_shift;
    v.block_stride = pool.block_bytes();
    return v;
}

}  // namespace edgellm::model
