// Decoder forward pass (pre-norm RMSNorm, RoPE attention with GQA over the KV cache, SwiGLU or
// GeGLU FFN; Gemma's embedding scale, post-norms, soft caps and sliding windows; DeepSeek's
// Multi-head Latent Attention and Mixture-of-Experts FFN) built from the kernels op set. Prefill
// runs every projection as one matrix-matrix product over the step's tokens; decode is the same
// code with one token.
#include "model/forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels/cpu/thread_pool.h"
#include "kernels/kernels.h"

namespace edgellm::model {

// Element-wise work (activations, RoPE and the KV stores) of fewer elements than this runs on the
// calling thread: a worker's wake-up costs more than the work (mul_mat's threshold for tiny products).
constexpr int64_t k_min_parallel_elems = 32 * 1024;

const char* flash_attn_name(flash_attn_mode m) {
    switch (m) {
        case flash_attn_mode::automatic: return "auto";
        case flash_attn_mode::on: return "on";
        case flash_attn_mode::off: return "off";
    }
    return "?";
}

std::optional<flash_attn_mode> parse_flash_attn(std::string_view s) {
    if (s == "auto") return flash_attn_mode::automatic;
    if (s == "on" || s == "1" || s == "true") return flash_attn_mode::on;
    if (s == "off" || s == "0" || s == "false") return flash_attn_mode::off;
    return std::nullopt;
}

int64_t batch::n_outputs() const {
    int64_t n = 0;
    for (uint8_t w : want_logits) n += w;
    return n;
}

forward_pass::forward_pass(const model& m, int64_t n_batch, int64_t n_ctx, int n_threads)
    : m_(m), n_batch_(n_batch), n_ctx_(n_ctx), n_threads_(n_threads > 0 ? n_threads : 1) {
    if (n_batch <= 0) throw usage_error(fmt::format("batch size must be positive, got {}", n_batch));
    if (n_ctx <= 0) throw usage_error(fmt::format("context size must be positive, got {}", n_ctx));
    const model_hparams& hp = m.hparams();
    const auto sz = [n_batch](int64_t width) { return static_cast<size_t>(n_batch * width); };
    x_.resize(sz(hp.n_embd));
    xn_.resize(sz(hp.n_embd));
    q_.resize(sz(hp.q_dim()));
    k_.resize(sz(hp.kv_dim()));
    v_.resize(sz(hp.kv_dim()));
    if (!m.weights().layers.empty() && m.weights().layers[0].q_norm) {
        q2_.resize(sz(hp.q_dim()));
        k2_.resize(sz(hp.kv_dim()));
    }
    attn_.resize(sz(hp.q_dim()));
    proj_.resize(sz(hp.n_embd));
    const int64_t n_ff_max = std::max(hp.n_ff, hp.moe.n_ff_exp * hp.moe.n_expert_shared);
    gate_.resize(sz(n_ff_max));
    up_.resize(sz(n_ff_max));
    if (const mla_hparams& a = hp.mla; a.enabled()) {
        mla_q_.resize(sz(hp.n_head * a.k_head()));
        mla_qa_.resize(sz(a.q_lora_rank));
        mla_qa2_.resize(sz(a.q_lora_rank));
        mla_kv_.resize(sz(a.kv_lora_rank + a.qk_rope));
        mla_in_.resize(sz(std::max(a.qk_nope, a.kv_lora_rank)));
        mla_out_.resize(sz(std::max(a.kv_lora_rank, a.v_head)));
        mla_v_.resize(sz(hp.n_head * a.v_head));
        rope_cs_.resize(static_cast<size_t>(a.qk_rope));
    }
    if (const moe_hparams& e = hp.moe; e.n_expert > 0) {
        router_.resize(sz(e.n_expert));
        ex_in_.resize(sz(hp.n_embd));
        ex_gate_.resize(sz(e.n_ff_exp));
        ex_up_.resize(sz(e.n_ff_exp));
        ex_out_.resize(sz(hp.n_embd));
        expert_rows_.resize(static_cast<size_t>(e.n_expert));
    }
}

std::map<int32_t, int64_t> forward_pass::validate(const kv_cache& kv, const batch& b) const {
    const model_hparams& hp = m_.hparams();
    if (b.positions.size() != b.size() || b.seq_ids.size() != b.size() || b.want_logits.size() != b.size())
        throw error("batch arrays have different lengths");
    if (kv.n_ctx() > n_ctx_)
        throw error(fmt::format("KV cache context {} exceeds the forward pass context {}", kv.n_ctx(), n_ctx_));
    std::map<int32_t, int64_t> next_pos;
    for (size_t i = 0; i < b.size(); ++i) {
        const int32_t tok = b.tokens[i];
        const int32_t seq = b.seq_ids[i];
        if (tok < 0 || tok >= hp.n_vocab)
            throw error(fmt::format("token id {} at batch index {} is outside the vocabulary (0..{})", tok, i,
                                    hp.n_vocab - 1));
        if (seq < 0 || seq >= kv.n_seq())
            throw error(fmt::format("sequence id {} at batch index {} is out of range (0..{})", seq, i, kv.n_seq() - 1));
        auto it = next_pos.try_emplace(seq, kv.seq_len(seq)).first;
        if (b.positions[i] != it->second)
            throw error(fmt::format("batch index {}: sequence {} continues at position {}, got {}", i, seq, it->second,
                                    b.positions[i]));
        if (b.positions[i] >= kv.n_ctx())
            throw error(fmt::format("sequence {} is full: position {} does not fit the context of {} tokens", seq,
                                    b.positions[i], kv.n_ctx()));
        ++it->second;
    }
    return next_pos;
}

std::span<const float> forward_pass::eval(kv_cache& kv, const batch& b) { return eval_impl(kv, b, false); }

std::span<const float> forward_pass::eval_embeddings(kv_cache& kv, const batch& b) { return eval_impl(kv, b, true); }

std::span<const float> forward_pass::eval_impl(kv_cache& kv, const batch& b, bool hidden) {
    const kernels::batch_invariant_scope invariant(deterministic_);
    const model_hparams& hp = m_.hparams();
    if (!hidden && m_.is_encoder())
        throw error(fmt::format("model architecture '{}' is an encoder: it has no next-token logits (use embeddings)",
                                hp.arch));
    // Blocks for every position the batch writes, before any is written.
    const std::map<int32_t, int64_t> end_pos = validate(kv, b);
    if (!hp.causal) {
        // Bidirectional attention: every token sees its whole sequence, so a sequence must arrive
        // whole, in one step.
        if (static_cast<int64_t>(b.size()) > n_batch_)
            throw error(fmt::format("an encoder batch of {} tokens exceeds the batch size {}: bidirectional attention "
                                    "needs each input whole in one step",
                                    b.size(), n_batch_));
        for (const auto& [seq, n_pos] : end_pos)
            if (kv.seq_len(seq) != 0)
                throw error(fmt::format("sequence {} already holds {} positions: an encoder input must be whole in one "
                                        "batch",
                                        seq, kv.seq_len(seq)));
    }
    seq_end_ = end_pos;
    int64_t need = 0;
    for (const auto& [seq, n_pos] : end_pos) need += kv.blocks_needed(seq, n_pos);
    if (need > kv.n_free_blocks())
        throw error(fmt::format("KV cache is full: the batch needs {} more blocks of {} positions, {} are free", need,
                                k_kv_block_size, kv.n_free_blocks()));
    for (const auto& [seq, n_pos] : end_pos) kv.reserve(seq, n_pos);
    const int64_t width = hidden ? hp.n_embd : hp.n_vocab;
    const size_t n_out = hidden ? b.size() : static_cast<size_t>(b.n_outputs());
    std::vector<float>& buf = hidden ? hidden_ : logits_;
    if (buf.size() < n_out * static_cast<size_t>(width)) buf.resize(n_out * static_cast<size_t>(width));
    float* out = buf.data();
    // A window-sized cache holds k_kv_swa_step new positions per sequence and step at most: longer
    // inputs run in steps of that size, each reserving its window blocks (which releases the
    // blocks the step's queries no longer see).
    const size_t step = static_cast<size_t>(kv.windowed() ? std::min(n_batch_, k_kv_swa_step) : n_batch_);
    for (size_t begin = 0; begin < b.size(); begin += step) {
        const size_t end = std::min(b.size(), begin + step);
        if (kv.windowed()) {
            std::map<int32_t, int64_t> step_end;
            for (size_t i = begin; i < end; ++i) step_end[b.seq_ids[i]] = b.positions[i] + 1;
            for (const auto& [seq, n_pos] : step_end)
                if (!kv.reserve(seq, n_pos))
                    throw error(fmt::format("KV cache is full: no sliding-window block left for sequence {}", seq));
        }
        eval_step(kv, b, begin, end, out, hidden);
        for (size_t i = begin; i < end; ++i) out += (hidden || b.want_logits[i]) ? width : 0;
    }
    return {buf.data(), n_out * static_cast<size_t>(width)};
}

void forward_pass::eval_step(kv_cache& kv, const batch& b, size_t begin, size_t end, float* logits_out, bool hidden) {
    const model_hparams& hp = m_.hparams();
    const model_weights& w = m_.weights();
    const int64_t n = static_cast<int64_t>(end - begin);
    const int64_t n_embd = hp.n_embd;

    for (int64_t t = 0; t < n; ++t)
        kernels::get_row(w.token_embd.type, w.token_embd.data, n_embd, b.tokens[begin + t], &x_[t * n_embd]);
    if (hp.embd_scale != 1.0f)
        for (int64_t i = 0; i < n * n_embd; ++i) x_[static_cast<size_t>(i)] *= hp.embd_scale;
    if (w.pos_embd) {
        // Encoders: absolute position and token-type (segment A: row 0) embeddings, then LayerNorm.
        thread_local std::vector<float> row;
        row.resize(static_cast<size_t>(n_embd));
        for (int64_t t = 0; t < n; ++t) {
            const int64_t pos = b.positions[begin + t];
            if (pos >= w.pos_embd.n_rows)
                throw error(fmt::format("position {} is past the model's {} position embeddings", pos,
                                        w.pos_embd.n_rows));
            kernels::get_row(w.pos_embd.type, w.pos_embd.data, n_embd, pos, row.data());
            kernels::add(&x_[t * n_embd], row.data(), n_embd);
            if (w.token_types) {
                kernels::get_row(w.token_types.type, w.token_types.data, n_embd, 0, row.data());
                kernels::add(&x_[t * n_embd], row.data(), n_embd);
            }
        }
    }
    if (w.token_embd_norm)
        kernels::layer_norm(x_.data(), w.token_embd_norm, w.token_embd_norm_b, x_.data(), n_embd, n, hp.norm_eps);

    const int nt = threads_for(n);
    n_rope_tables_ = 0;  // the step's positions are new
    const int first_gpu = gpu_ ? gpu_->first_layer() : static_cast<int>(hp.n_layer);
    for (int il = 0; il < first_gpu; ++il) {
        if (hp.post_layer_norm)
            eval_encoder_layer(il, kv, b, begin, n, nt);
        else
            eval_layer(il, kv, b, begin, n, nt);
    }
    if (gpu_) {
        for (size_t i = begin; i < end; ++i)
            if (b.seq_ids[i] != 0) throw error("GPU layers hold sequence 0 only");
        gpu_->run(x_.data(), &b.positions[begin], n);  // writes the GPU layers' own KV cache
    }

    // The keys and values of every layer are written: the new positions are now valid.
    for (size_t i = begin; i < end; ++i) kv.extend(b.seq_ids[i], b.positions[i] + 1);

    if (hidden) {
        // Every entry's final hidden state: after the decoder's final norm; an encoder's is its
        // last LayerNorm's output already.
        for (int64_t t = 0; t < n; ++t) {
            if (w.output_norm)
                kernels::rms_norm(&x_[t * n_embd], w.output_norm, logits_out + t * n_embd, n_embd, 1, hp.rms_eps);
            else
                std::copy_n(&x_[t * n_embd], n_embd, logits_out + t * n_embd);
        }
        return;
    }

    // Final norm and output projection only for the rows whose logits were asked for.
    int64_t n_out = 0;
    for (int64_t t = 0; t < n; ++t) {
        if (!b.want_logits[begin + t]) continue;
        std::copy_n(&x_[t * n_embd], n_embd, &proj_[n_out * n_embd]);
        ++n_out;
    }
    if (n_out == 0) return;
    if (gpu_ && gpu_->output_on_gpu()) {
        gpu_->output(proj_.data(), n_out, logits_out);
    } else {
        kernels::rms_norm(proj_.data(), w.output_norm, xn_.data(), n_embd, n_out, hp.rms_eps);
        mul_mat(w.output, xn_.data(), n_out, logits_out, nt);
    }
    if (hp.final_softcap > 0.0f) kernels::softcap(logits_out, n_out * hp.n_vocab, hp.final_softcap);
}

// Below this many multiply-adds an attention call runs on the calling thread alone (the same
// order as mul_mat's 32K threshold for tiny products; a worker wake-up costs a few microseconds).
constexpr int64_t k_min_parallel_attention_macs = 64 * 1024;

void forward_pass::attend(int il, const kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt, const float* q) {
    // Causal attention: the token at position p sees positions 0..p of its own sequence, all of
    // which are in the cache now (earlier steps, or stored just before this call); on a
    // sliding-window layer only the last `window` of them, p - window + 1 .. p (llama.cpp masks a
    // key at distance >= window).
    const model_hparams& hp = m_.hparams();
    const int64_t q_dim = hp.q_dim();
    const float scale = hp.prescale_q ? 1.0f : hp.score_scale();  // prescaled Q carries the scale
    const float cap = hp.attn_softcap;
    const int64_t window = hp.window(il);
    const int64_t group = hp.n_head / hp.n_head_kv;

    // Units of work: a tile of up to k_q_tile consecutive tokens of one sequence for flash
    // attention, or one token for the per-token kernel (see flash_attn_mode).
    constexpr int64_t k_q_tile = 32;
    struct unit {
        int64_t t0, n_q;
        bool flash;
    };
    thread_local std::vector<unit> units_tl;
    std::vector<unit>& units = units_tl;  // the workers below must see this thread's list
    units.clear();
    if (n_kv_.size() < static_cast<size_t>(n)) n_kv_.resize(static_cast<size_t>(n));
    if (kv_first_.size() < static_cast<size_t>(n)) kv_first_.resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n;) {
        int64_t run = 1;
        while (t + run < n && b.seq_ids[begin + t + run] == b.seq_ids[begin + t]) ++run;
        // Deterministic: the per-token kernel for every token, as a lone decode token gets.
        const bool flash = !deterministic_ && (flash_attn_ == flash_attn_mode::on ||
                                               (flash_attn_ == flash_attn_mode::automatic && run > 1));
        for (int64_t i = 0; i < run; ++i) {
            const int64_t pos = b.positions[begin + t + i];
            // Causal: positions 0..pos; bidirectional (encoders): the whole sequence, all of it
            // stored by this step (eval_impl checks it arrived whole).
            n_kv_[static_cast<size_t>(t + i)] = hp.causal ? pos + 1 : seq_end_.at(b.seq_ids[begin + t + i]);
            kv_first_[static_cast<size_t>(t + i)] = window > 0 ? std::max<int64_t>(0, pos + 1 - window) : 0;
        }
        if (flash) {
            for (int64_t t0 = t; t0 < t + run; t0 += k_q_tile) units.push_back({t0, std::min(k_q_tile, t + run - t0), true});
        } else {
            for (int64_t i = 0; i < run; ++i) units.push_back({t + i, 1, false});
        }
        t += run;
    }

    // Items are (unit, group of KV heads): with fewer units than threads (decode) the heads of a
    // unit are split across threads. Each head's result does not depend on the split, so outputs
    // are bit-identical for any thread count.
    // Tiny attention (a small model early in its context) finishes before a worker could wake up:
    // waking it costs more than the work (2 threads took 0.20 ms per stories260K decode step
    // against 0.08 ms for 1). Estimate the multiply-adds, QK and PV, over every token.
    int64_t n_mac = 0;
    for (int64_t t = 0; t < n; ++t)
        n_mac += 2 * hp.n_head * hp.head_dim * (n_kv_[static_cast<size_t>(t)] - kv_first_[static_cast<size_t>(t)]);
    if (n_mac < k_min_parallel_attention_macs) nt = 1;
    const auto n_units = static_cast<int64_t>(units.size());
    const int64_t n_split = n_units >= nt ? 1 : std::min<int64_t>(hp.n_head_kv, (nt + n_units - 1) / n_units);
    const int64_t n_items = n_units * n_split;
    const int n_att_threads = static_cast<int>(std::min<int64_t>(nt, n_items));
    const size_t scores_needed = static_cast<size_t>(n_att_threads) * static_cast<size_t>(kv.n_ctx());
    if (scores_.size() < scores_needed) scores_.resize(scores_needed);
    // The kernels' own pool: an OpenMP team here would spin after the loop and steal the cores
    // the next matrix product runs on.
    kernels::cpu::parallel_for(n_att_threads, n_items, [&](int64_t item, int ti) {
        // Last units first: a causal sequence's later tiles see more keys, and handing out the
        // longest first balances the threads (the result of a unit does not depend on the order).
        const unit& u = units[static_cast<size_t>(n_units - 1 - item / n_split)];
        const int64_t part = item % n_split;
        const int64_t g0 = part * hp.n_head_kv / n_split, g1 = (part + 1) * hp.n_head_kv / n_split;
        kernels::kv_view view = kv.view(il, b.seq_ids[begin + u.t0]);
        const size_t head_bytes = view.row_bytes / static_cast<size_t>(hp.n_head_kv);
        view.k += static_cast<size_t>(g0) * head_bytes;  // rows keep their stride: only the heads move
        view.v += static_cast<size_t>(g0) * head_bytes;
        const int64_t h0 = g0 * group * hp.head_dim;
        const float* qu = q + u.t0 * q_dim + h0;
        float* out = &attn_[static_cast<size_t>(u.t0 * q_dim + h0)];
        const auto t0 = static_cast<size_t>(u.t0);
        if (u.flash) {
            kernels::flash_attention_ext(qu, q_dim, view, window > 0 ? &kv_first_[t0] : nullptr, &n_kv_[t0], u.n_q,
                                         (g1 - g0) * group, g1 - g0, hp.head_dim, scale, cap, out, q_dim);
        } else {
            float* scratch = &scores_[static_cast<size_t>(ti) * static_cast<size_t>(kv.n_ctx())];
            kernels::attention_ext(qu, view, kv_first_[t0], n_kv_[t0], (g1 - g0) * group, g1 - g0, hp.head_dim, scale,
                                   cap, out, scratch);
        }
    });
}

void forward_pass::eval_layer(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt) {
    const model_hparams& hp = m_.hparams();
    const layer_weights& lw = m_.weights().layers[static_cast<size_t>(il)];

    // Attention block.
    kernels::rms_norm(x_.data(), lw.attn_norm, xn_.data(), hp.n_embd, n, hp.rms_eps);
    const float* q = hp.mla.enabled() ? mla_qkv(il, kv, b, begin, n, nt) : attn_qkv(il, kv, b, begin, n, nt);
    attend(il, kv, b, begin, n, nt, q);
    mul_mat(lw.wo, hp.mla.enabled() ? mla_values(il, n, nt) : attn_.data(), n, proj_.data(), nt);
    add_residual(lw.post_attn_norm, n);

    // Feed-forward block.
    kernels::rms_norm(x_.data(), lw.ffn_norm, xn_.data(), hp.n_embd, n, hp.rms_eps);
    if (hp.moe.is_moe_layer(il))
        moe_ffn(lw, n, nt);
    else
        dense_ffn(lw, n, nt);
    add_residual(lw.post_ffn_norm, n);
}

void forward_pass::eval_encoder_layer(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt) {
    const model_hparams& hp = m_.hparams();
    const layer_weights& lw = m_.weights().layers[static_cast<size_t>(il)];
    const int64_t n_embd = hp.n_embd, n_ff = hp.n_ff;
    const auto add_rows = [n](float* y, const float* bias, int64_t width) {
        if (bias)
            for (int64_t t = 0; t < n; ++t) kernels::add(y + t * width, bias, width);
    };

    std::copy_n(x_.data(), n * n_embd, xn_.data());  // attn_qkv projects xn_
    const float* q = attn_qkv(il, kv, b, begin, n, nt);
    attend(il, kv, b, begin, n, nt, q);
    mul_mat(lw.wo, attn_.data(), n, proj_.data(), nt);
    add_rows(proj_.data(), lw.bo, n_embd);
    kernels::add(x_.data(), proj_.data(), n * n_embd);
    kernels::layer_norm(x_.data(), lw.attn_out_norm, lw.attn_out_norm_b, x_.data(), n_embd, n, hp.norm_eps);

    mul_mat(lw.ffn_up, x_.data(), n, up_.data(), nt);
    add_rows(up_.data(), lw.ffn_up_b, n_ff);
    kernels::gelu(up_.data(), n * n_ff);
    mul_mat(lw.ffn_down, up_.data(), n, proj_.data(), nt);
    add_rows(proj_.data(), lw.ffn_down_b, n_embd);
    kernels::add(x_.data(), proj_.data(), n * n_embd);
    kernels::layer_norm(x_.data(), lw.layer_out_norm, lw.layer_out_norm_b, x_.data(), n_embd, n, hp.norm_eps);
}

const float* forward_pass::attn_qkv(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt) {
    const model_hparams& hp = m_.hparams();
    const model_weights& w = m_.weights();
    const layer_weights& lw = w.layers[static_cast<size_t>(il)];
    const int64_t q_dim = hp.q_dim();
    const int64_t kv_dim = hp.kv_dim();
    auto mm = [&](const matrix& wt, const float* in, float* out) { mul_mat(wt, in, n, out, nt); };

    mm(lw.wq, xn_.data(), q_.data());
    mm(lw.wk, xn_.data(), k_.data());
    mm(lw.wv, xn_.data(), v_.data());
    float* q = q_.data();
    float* k = k_.data();
    if (lw.bq) {
        for (int64_t t = 0; t < n; ++t) {
            kernels::add(&q[t * q_dim], lw.bq, q_dim);
            kernels::add(&k[t * kv_dim], lw.bk, kv_dim);
            kernels::add(&v_[t * kv_dim], lw.bv, kv_dim);
        }
    }
    if (lw.q_norm) {
        // Per-head RMSNorm: the [n][n_head][head_dim] block is n * n_head rows of head_dim.
        kernels::rms_norm(q, lw.q_norm, q2_.data(), hp.head_dim, n * hp.n_head, hp.rms_eps);
        kernels::rms_norm(k, lw.k_norm, k2_.data(), hp.head_dim, n * hp.n_head_kv, hp.rms_eps);
        q = q2_.data();
        k = k2_.data();
    }
    const float rope_base = hp.layer_rope_base(il), rope_scale = hp.layer_rope_scale(il);
    const float q_scale = hp.score_scale();
    // The angle tables of this step's positions for this layer's base and scale: made by the first
    // layer that needs them (below, token by token), reused by the others. Under the forced
    // reference every rope call stays the reference's own.
    const bool tables = hp.use_rope && kernels::active_impl() != kernels::impl::reference;
    float* cs = nullptr;
    bool fill = false;
    if (tables) {
        size_t e = 0;
        while (e < n_rope_tables_ && !(rope_tables_[e].base == rope_base && rope_tables_[e].scale == rope_scale)) ++e;
        if (e == n_rope_tables_) {
            if (rope_tables_.size() <= e) rope_tables_.emplace_back();
            rope_tables_[e].base = rope_base;
            rope_tables_[e].scale = rope_scale;
            rope_tables_[e].cs.resize(static_cast<size_t>(n_batch_ * hp.n_rot));
            ++n_rope_tables_;
            fill = true;
        }
        cs = rope_tables_[e].cs.data();
    }
    // Token by token (each row's result is the same whatever the split): RoPE, Q's prescale, and
    // the K and V rows into the cache (validate() checked every position, so store cannot throw).
    auto token = [&](int64_t t, int) {
        const int64_t pos = b.positions[begin + t];
        float* qt = &q[t * q_dim];
        if (hp.use_rope) {
            if (tables) {
                float* ct = cs + t * hp.n_rot;
                if (fill) kernels::rope_angles(hp.n_rot, pos, rope_base, rope_scale, w.rope_freqs, ct);
                kernels::rope_rotate(qt, hp.n_head, hp.head_dim, hp.n_rot, ct, hp.rope);
                kernels::rope_rotate(&k[t * kv_dim], hp.n_head_kv, hp.head_dim, hp.n_rot, ct, hp.rope);
            } else {
                kernels::rope(qt, hp.n_head, hp.head_dim, hp.n_rot, pos, rope_base, rope_scale, w.rope_freqs, hp.rope);
                kernels::rope(&k[t * kv_dim], hp.n_head_kv, hp.head_dim, hp.n_rot, pos, rope_base, rope_scale,
                              w.rope_freqs, hp.rope);
            }
            if (hp.prescale_q)
                for (int64_t i = 0; i < q_dim; ++i) qt[i] *= q_scale;
        }
        kv.store(il, b.seq_ids[begin + t], pos, &k[t * kv_dim], &v_[t * kv_dim]);
    };
    kernels::cpu::parallel_for(n * (q_dim + 2 * kv_dim) < k_min_parallel_elems ? 1 : nt, n, token);
    return q;
}

namespace {

// cos and sin (interleaved, [n_rot / 2][2]) of the normal-layout RoPE at `pos`, as ggml_rope_ext
// computes them: angle pos * base^(-2i / n_rot), times freq_scale; with YaRN (ext_factor 1) the
// low-frequency pairs keep the interpolated angle, the high-frequency ones the original, blended
// linearly between the correction dims of beta_fast 32 and beta_slow 1 (arXiv:2309.00071, ggml's
// rope_yarn and ggml_rope_yarn_corr_dims); both are multiplied by `mscale`.
void rope_cos_sin(const model_hparams& hp, int64_t pos, float mscale, float* cs) {
    const int64_t n_dims = hp.n_rot;
    const float base = hp.rope_freq_base, freq_scale = hp.rope_freq_scale;
    float lo = 0.0f, hi = 0.0f;
    if (hp.rope_yarn) {
        constexpr float k_beta_fast = 32.0f, k_beta_slow = 1.0f, k_pi = 3.14159265358979f;
        const auto corr_dim = [&](float beta) {
            return static_cast<float>(n_dims) *
                   std::log(static_cast<float>(hp.n_ctx_orig_yarn) / (beta * 2.0f * k_pi)) /
                   (2.0f * std::log(base));
        };
        lo = std::max(0.0f, std::floor(corr_dim(k_beta_fast)));
        hi = std::min(static_cast<float>(n_dims - 1), std::ceil(corr_dim(k_beta_slow)));
    }
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_dims));
    float theta_extrap = static_cast<float>(pos);
    for (int64_t i0 = 0; i0 < n_dims; i0 += 2) {
        float theta = freq_scale * theta_extrap;
        if (hp.rope_yarn) {
            const float y = (static_cast<float>(i0 / 2) - lo) / std::max(0.001f, hi - lo);
            const float ramp_mix = 1.0f - std::min(1.0f, std::max(0.0f, y));
            theta = theta * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
        }
        cs[i0] = std::cos(theta) * mscale;
        cs[i0 + 1] = std::sin(theta) * mscale;
        theta_extrap *= theta_scale;
    }
}

// Rotates pairs (x[2i], x[2i + 1]) of n_rot values by the angles in cs (rope_cos_sin).
void rotate_pairs(float* x, const float* cs, int64_t n_rot) {
    for (int64_t i = 0; i < n_rot; i += 2) {
        const float x0 = x[i], x1 = x[i + 1];
        x[i] = x0 * cs[i] - x1 * cs[i + 1];
        x[i + 1] = x0 * cs[i + 1] + x1 * cs[i];
    }
}

// dst rows (stride dst_stride) = src rows (stride src_stride), `width` floats each, n rows.
void copy_rows(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t width, int64_t n) {
    for (int64_t t = 0; t < n; ++t) std::copy_n(src + t * src_stride, width, dst + t * dst_stride);
}

}  // namespace

const float* forward_pass::mla_qkv(int il, kv_cache& kv, const batch& b, size_t begin, int64_t n, int nt) {
    // DeepSeek-V2 (arXiv:2405.04434) section 2.1, in the absorbed form llama.cpp runs: see mla_hparams.
    const model_hparams& hp = m_.hparams();
    const layer_weights& lw = m_.weights().layers[static_cast<size_t>(il)];
    const mla_hparams& a = hp.mla;
    const mla_weights& mw = lw.mla;
    const int64_t k_head = a.k_head(), q_raw = hp.n_head * k_head;
    const int64_t dk = hp.head_dim;  // kv_lora_rank + qk_rope: one cached row, one absorbed query head
    const int64_t q_dim = hp.q_dim();
    auto mm = [&](const matrix& wt, const float* in, float* out) { mul_mat(wt, in, n, out, nt); };

    // Q [n][n_head][qk_nope | qk_rope], directly or through the LoRA down-projection and its norm.
    if (a.q_lora_rank > 0) {
        mm(mw.wq_a, xn_.data(), mla_qa_.data());
        kernels::rms_norm(mla_qa_.data(), mw.q_a_norm, mla_qa2_.data(), a.q_lora_rank, n, hp.rms_eps);
        mm(mw.wq_b, mla_qa2_.data(), mla_q_.data());
    } else {
        mm(lw.wq, xn_.data(), mla_q_.data());
    }
    // The cached row: [RMS-normed latent | rope key], the key rotated below.
    mm(mw.wkv_a, xn_.data(), mla_kv_.data());
    for (int64_t t = 0; t < n; ++t) {
        kernels::rms_norm(&mla_kv_[t * dk], mw.kv_a_norm, &k_[t * dk], a.kv_lora_rank, 1, hp.rms_eps);
        std::copy_n(&mla_kv_[t * dk + a.kv_lora_rank], a.qk_rope, &k_[t * dk + a.kv_lora_rank]);
    }
    // Absorbed query heads: [W_kb[h] q_nope[h] | q_rope[h]].
    for (int64_t h = 0; h < hp.n_head; ++h) {
        copy_rows(&mla_q_[h * k_head], q_raw, mla_in_.data(), a.qk_nope, a.qk_nope, n);
        mm(mw.wk_b[static_cast<size_t>(h)], mla_in_.data(), mla_out_.data());
        copy_rows(mla_out_.data(), a.kv_lora_rank, &q_[h * dk], q_dim, a.kv_lora_rank, n);
        copy_rows(&mla_q_[h * k_head + a.qk_nope], q_raw, &q_[h * dk + a.kv_lora_rank], q_dim, a.qk_rope, n);
    }
    for (int64_t t = 0; t < n; ++t) {
        const int64_t pos = b.positions[begin + t];
        rope_cos_sin(hp, pos, a.rope_mscale, rope_cs_.data());
        for (int64_t h = 0; h < hp.n_head; ++h) rotate_pairs(&q_[t * q_dim + h * dk + a.kv_lora_rank], rope_cs_.data(), a.qk_rope);
        rotate_pairs(&k_[t * dk + a.kv_lora_rank], rope_cs_.data(), a.qk_rope);
        kv.store(il, b.seq_ids[begin + t], pos, &k_[t * dk], nullptr);
    }
    return q_.data();
}

const float* forward_pass::mla_values(int il, int64_t n, int nt) {
    // Each head attended the cached rows; the latent part of its result (the first kv_lora_rank
    // values; the rest, the weighted rope keys, is not a value) is projected by W_vb[h].
    const model_hparams& hp = m_.hparams();
    const mla_weights& mw = m_.weights().layers[static_cast<size_t>(il)].mla;
    const mla_hparams& a = hp.mla;
    const int64_t dk = hp.head_dim, v_dim = hp.n_head * a.v_head;
    for (int64_t h = 0; h < hp.n_head; ++h) {
        copy_rows(&attn_[h * dk], hp.q_dim(), mla_in_.data(), a.kv_lora_rank, a.kv_lora_rank, n);
        mul_mat(mw.wv_b[static_cast<size_t>(h)], mla_in_.data(), n, mla_out_.data(), nt);
        copy_rows(mla_out_.data(), a.v_head, &mla_v_[h * a.v_head], v_dim, a.v_head, n);
    }
    return mla_v_.data();
}

void forward_pass::dense_ffn(const layer_weights& lw, int64_t n, int nt) {
    // down(act(gate(x)) * up(x)), act = silu (SwiGLU) or tanh GELU (GeGLU).
    const model_hparams& hp = m_.hparams();
    mul_mat(lw.ffn_gate, xn_.data(), n, gate_.data(), nt);
    mul_mat(lw.ffn_up, xn_.data(), n, up_.data(), nt);
    // Row by row, so a token's result does not depend on the split or on the batch.
    const int64_t n_ff = hp.n_ff;
    const bool gelu = hp.ffn_act == ffn_activation::gelu;
    kernels::cpu::parallel_for(n * n_ff < k_min_parallel_elems ? 1 : nt, n, [&](int64_t t, int) {
        float* g = &gate_[static_cast<size_t>(t * n_ff)];
        const float* u = &up_[static_cast<size_t>(t * n_ff)];
        if (gelu)
            kernels::geglu(g, u, g, n_ff);
        else
            kernels::swiglu(g, u, g, n_ff);
    });
    mul_mat(lw.ffn_down, gate_.data(), n, proj_.data(), nt);
}

void forward_pass::moe_ffn(const layer_weights& lw, int64_t n, int nt) {
    // llama.cpp's build_moe_ffn: probabilities p = softmax or sigmoid of the router logits; experts
    // chosen by the top n_expert_used of p + bias (when the model has one), restricted to the best
    // n_group_used groups (a group scores the sum of its two best) when experts are grouped; each
    // chosen expert weighs p (not p + bias), normalised to sum 1 and scaled when the model says so.
    const model_hparams& hp = m_.hparams();
    const moe_hparams& e = hp.moe;
    const moe_weights& mw = lw.moe;
    const int64_t n_embd = hp.n_embd, n_exp = e.n_expert;
    mul_mat(mw.gate_inp, xn_.data(), n, router_.data(), nt);
    for (auto& rows : expert_rows_) rows.clear();
    std::vector<float> sel(static_cast<size_t>(n_exp));
    std::vector<int32_t> order(static_cast<size_t>(n_exp));
    for (int64_t t = 0; t < n; ++t) {
        float* p = &router_[t * n_exp];
        if (e.gating == moe_gating::softmax)
            kernels::softmax(p, n_exp);
        else
            for (int64_t i = 0; i < n_exp; ++i) p[i] = 1.0f / (1.0f + std::exp(-p[i]));
        for (int64_t i = 0; i < n_exp; ++i) sel[static_cast<size_t>(i)] = p[i] + (mw.probs_bias ? mw.probs_bias[i] : 0.0f);
        if (e.n_group > 1) {
            const int64_t per_group = n_exp / e.n_group;
            std::vector<float> group_score(static_cast<size_t>(e.n_group));
            for (int64_t g = 0; g < e.n_group; ++g) {
                float best = -INFINITY, second = -INFINITY;
                for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i) {
                    const float v = sel[static_cast<size_t>(i)];
                    if (v > best) {
                        second = best;
                        best = v;
                    } else if (v > second) {
                        second = v;
                    }
                }
                group_score[static_cast<size_t>(g)] = best + second;
            }
            std::vector<int32_t> groups(static_cast<size_t>(e.n_group));
            for (int32_t g = 0; g < static_cast<int32_t>(e.n_group); ++g) groups[static_cast<size_t>(g)] = g;
            std::partial_sort(groups.begin(), groups.begin() + e.n_group_used, groups.end(), [&](int32_t x, int32_t y) {
                return group_score[static_cast<size_t>(x)] > group_score[static_cast<size_t>(y)];
            });
            for (int64_t gi = e.n_group_used; gi < e.n_group; ++gi)
                for (int64_t i = 0; i < per_group; ++i)
                    sel[static_cast<size_t>(groups[static_cast<size_t>(gi)] * per_group + i)] = -INFINITY;
        }
        for (int32_t i = 0; i < static_cast<int32_t>(n_exp); ++i) order[static_cast<size_t>(i)] = i;
        std::partial_sort(order.begin(), order.begin() + e.n_expert_used, order.end(), [&](int32_t x, int32_t y) {
            return sel[static_cast<size_t>(x)] > sel[static_cast<size_t>(y)];
        });
        float sum = 0.0f;
        for (int64_t k = 0; k < e.n_expert_used; ++k) sum += p[order[static_cast<size_t>(k)]];
        const float norm = e.weights_norm ? 1.0f / std::max(sum, 6.103515625e-5f) : 1.0f;  // llama.cpp's clamp
        const float scale = e.weights_scale != 0.0f ? e.weights_scale : 1.0f;
        for (int64_t k = 0; k < e.n_expert_used; ++k) {
            const int32_t x = order[static_cast<size_t>(k)];
            expert_rows_[static_cast<size_t>(x)].push_back({t, p[x] * norm * scale});
        }
    }

    // Shared experts (one SwiGLU FFN over every token) start the sum; the routed experts add to it.
    if (mw.gate_shexp) {
        const int64_t n_ff_sh = e.n_ff_exp * e.n_expert_shared;
        mul_mat(mw.gate_shexp, xn_.data(), n, gate_.data(), nt);
        mul_mat(mw.up_shexp, xn_.data(), n, up_.data(), nt);
        kernels::swiglu(gate_.data(), up_.data(), gate_.data(), n * n_ff_sh);
        mul_mat(mw.down_shexp, gate_.data(), n, proj_.data(), nt);
    } else {
        std::fill_n(proj_.begin(), n * n_embd, 0.0f);
    }
    // Each expert runs once over the rows routed to it (a contiguous slice of the 3-D tensors).
    for (int64_t x = 0; x < n_exp; ++x) {
        const auto& rows = expert_rows_[static_cast<size_t>(x)];
        if (rows.empty()) continue;
        const auto cnt = static_cast<int64_t>(rows.size());
        for (int64_t r = 0; r < cnt; ++r) std::copy_n(&xn_[rows[static_cast<size_t>(r)].t * n_embd], n_embd, &ex_in_[r * n_embd]);
        mul_mat(mw.gate[static_cast<size_t>(x)], ex_in_.data(), cnt, ex_gate_.data(), nt);
        mul_mat(mw.up[static_cast<size_t>(x)], ex_in_.data(), cnt, ex_up_.data(), nt);
        kernels::swiglu(ex_gate_.data(), ex_up_.data(), ex_gate_.data(), cnt * e.n_ff_exp);
        mul_mat(mw.down[static_cast<size_t>(x)], ex_gate_.data(), cnt, ex_out_.data(), nt);
        for (int64_t r = 0; r < cnt; ++r) {
            const routed_row& rr = rows[static_cast<size_t>(r)];
            float* dst = &proj_[rr.t * n_embd];
            const float* src = &ex_out_[r * n_embd];
            for (int64_t i = 0; i < n_embd; ++i) dst[i] += rr.weight * src[i];
        }
    }
}

void forward_pass::add_residual(const float* post_norm, int64_t n) {
    const model_hparams& hp = m_.hparams();
    const int64_t n_embd = hp.n_embd;
    if (post_norm) {
        // Gemma 2/3: the sub-layer's output is normalised before it joins the residual stream.
        kernels::rms_norm(proj_.data(), post_norm, xn_.data(), n_embd, n, hp.rms_eps);
        kernels::add(x_.data(), xn_.data(), n * n_embd);
    } else {
        kernels::add(x_.data(), proj_.data(), n * n_embd);
    }
}

}  // namespace edgellm::model
