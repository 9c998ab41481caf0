// KV cache storage: one contiguous block per (layer, sequence, K/V), rows converted on store.
#include "model/kv_cache.h"

#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "quant/fp16.h"

namespace edgellm::model {

kv_cache::kv_cache(const model_hparams& hp, int64_t n_ctx, ggml_type type, int n_seq)
    : type_(type), n_ctx_(n_ctx), n_seq_(n_seq), n_layer_(hp.n_layer), row_elems_(hp.kv_dim()) {
    if (type != ggml_type::f16 && type != ggml_type::f32)
        throw usage_error(fmt::format("KV cache type {} is not supported (use f16 or f32)", type_name(type)));
    if (n_ctx <= 0) throw usage_error(fmt::format("KV cache context must be positive, got {}", n_ctx));
    if (n_seq <= 0) throw usage_error(fmt::format("KV cache needs at least one sequence, got {}", n_seq));
    row_bytes_ = row_size(type, row_elems_);
    block_bytes_ = row_bytes_ * static_cast<size_t>(n_ctx);
    n_bytes_ = static_cast<uint64_t>(block_bytes_) * 2 * static_cast<uint64_t>(n_layer_) * static_cast<uint64_t>(n_seq);
    // Left uninitialised on purpose: only rows below seq_len are ever read, and untouched pages
    // cost no resident memory.
    data_ = std::make_unique_for_overwrite<uint8_t[]>(n_bytes_);
    seq_len_.assign(static_cast<size_t>(n_seq), 0);
}

void kv_cache::check_seq(int seq) const {
    if (seq < 0 || seq >= n_seq_)
        throw error(fmt::format("sequence id {} out of range (KV cache holds {} sequences)", seq, n_seq_));
}

int64_t kv_cache::seq_len(int seq) const {
    check_seq(seq);
    return seq_len_[static_cast<size_t>(seq)];
}

void kv_cache::truncate(int seq, int64_t n_pos) {
    check_seq(seq);
    if (n_pos < 0 || n_pos > seq_len_[static_cast<size_t>(seq)])
        throw error(fmt::format("cannot truncate sequence {} of length {} to {} positions", seq,
                                seq_len_[static_cast<size_t>(seq)], n_pos));
    seq_len_[static_cast<size_t>(seq)] = n_pos;
}

void kv_cache::clear_all() { std::fill(seq_len_.begin(), seq_len_.end(), 0); }

const uint8_t* kv_cache::base(int64_t il, int seq, int kv) const {
    return data_.get() + ((static_cast<size_t>(il) * n_seq_ + static_cast<size_t>(seq)) * 2 + kv) * block_bytes_;
}
uint8_t* kv_cache::base(int64_t il, int seq, int kv) {
    return const_cast<uint8_t*>(static_cast<const kv_cache*>(this)->base(il, seq, kv));
}

void kv_cache::store(int64_t il, int seq, int64_t pos, const float* k, const float* v) {
    check_seq(seq);
    if (pos < 0 || pos >= n_ctx_)
        throw error(fmt::format("KV position {} is outside the context of {} positions", pos, n_ctx_));
    if (il < 0 || il >= n_layer_) throw error(fmt::format("KV layer {} out of range", il));
    uint8_t* dk = base(il, seq, 0) + static_cast<size_t>(pos) * row_bytes_;
    uint8_t* dv = base(il, seq, 1) + static_cast<size_t>(pos) * row_bytes_;
    if (type_ == ggml_type::f32) {
        std::memcpy(dk, k, row_bytes_);
        std::memcpy(dv, v, row_bytes_);
    } else {
        auto* hk = reinterpret_cast<fp16_bits*>(dk);
        auto* hv = reinterpret_cast<fp16_bits*>(dv);
        for (int64_t i = 0; i < row_elems_; ++i) {
            hk[i] = fp32_to_fp16(k[i]);
            hv[i] = fp32_to_fp16(v[i]);
        }
    }
}

void kv_cache::extend(int seq, int64_t n_pos) {
    check_seq(seq);
    int64_t& len = seq_len_[static_cast<size_t>(seq)];
    if (n_pos < len || n_pos > n_ctx_)
        throw error(fmt::format("cannot extend sequence {} of length {} to {} positions (context {})", seq, len, n_pos,
                                n_ctx_));
    len = n_pos;
}

}  // namespace edgellm::model
