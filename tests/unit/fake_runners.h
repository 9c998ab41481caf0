// Fake step runners for the scheduler tests (no model). history_runner writes each position's
// token and position into the KV cache and computes the next token from what it reads back
// through the block table, so a KV block shared, copied, evicted or rolled back wrongly changes
// the output.
#pragma once
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "engine/scheduler.h"

namespace edgellm::testing {

using engine::request;
using engine::scheduler;
using engine::scheduler_params;
using engine::sequence_result;
constexpr int64_t B = model::k_kv_block_size;
constexpr int64_t k_vocab = 16;

inline model::model_hparams tiny_hparams() {
    model::model_hparams hp;
    hp.n_layer = 2;
    hp.n_head = 1;
    hp.n_head_kv = 1;
    hp.head_dim = 2;
    hp.n_embd = 2;
    hp.n_vocab = k_vocab;
    return hp;
}

inline std::vector<int32_t> tokens_from(uint32_t seed, size_t n) {
    std::vector<int32_t> v(n);
    for (auto& t : v) {
        seed = seed * 1664525u + 1013904223u;
        t = static_cast<int32_t>((seed >> 16) % k_vocab);
    }
    return v;
}

// Writes rows {token, position} (layer 1: {position, token}) at each entry and picks, for each
// entry that wants logits, the token sum over p <= pos of (p + 1) * row_p.token mod 16, reading
// the rows back through the KV cache's view of the sequence.
class history_runner : public engine::step_runner {
public:
    history_runner(int n_seq, int64_t n_ctx, int64_t n_cells) : kv_(tiny_hparams(), n_ctx, ggml_type::f32, n_seq, n_cells) {}
    int64_t n_vocab() const override { return k_vocab; }
    model::kv_cache& kv() override { return kv_; }
    std::span<const float> eval(const model::batch& b) override {
        ++n_evals;
        n_tokens += static_cast<int64_t>(b.size());
        std::map<int32_t, int64_t> next;
        for (size_t i = 0; i < b.size(); ++i) {
            const int32_t s = b.seq_ids[i];
            auto it = next.try_emplace(s, kv_.seq_len(s)).first;
            EXPECT_EQ(b.positions[i], it->second);
            EXPECT_EQ(kv_.block_refs(s, b.positions[i]), 1) << "writing into a block another sequence holds";
            const float k0[2] = {float(b.tokens[i]), float(b.positions[i])};
            const float k1[2] = {float(b.positions[i]), float(b.tokens[i])};
            kv_.store(0, s, b.positions[i], k0, k0);
            kv_.store(1, s, b.positions[i], k1, k1);
            ++it->second;
        }
        for (const auto& [s, n] : next) kv_.extend(s, n);
        logits_.assign(static_cast<size_t>(b.n_outputs()) * k_vocab, 0.0f);
        size_t r = 0;
        for (size_t i = 0; i < b.size(); ++i) {
            if (!b.want_logits[i]) continue;
            const kernels::kv_view v0 = kv_.view(0, b.seq_ids[i]), v1 = kv_.view(1, b.seq_ids[i]);
            int64_t sum = 0;
            for (int64_t p = 0; p <= b.positions[i]; ++p) {
                const float* k0 = static_cast<const float*>(v0.k_row(p));
                const float* k1 = static_cast<const float*>(v1.k_row(p));
                EXPECT_EQ(k0[1], float(p)) << "row of position " << p << " holds another position";
                EXPECT_EQ(k1[0], float(p));
                EXPECT_EQ(k0[0], k1[1]);
                sum += (p + 1) * static_cast<int64_t>(k0[0]);
            }
            const int64_t last = static_cast<int64_t>(static_cast<const float*>(v0.k_row(b.positions[i]))[0]);
            logits_[r++ * k_vocab + static_cast<size_t>(periodic ? (last + 1) % k_vocab : sum % k_vocab)] = 1.0f;
        }
        return logits_;
    }
    int64_t n_evals = 0;
    int64_t n_tokens = 0;
    bool periodic = false;  // the next token is the last one + 1 (mod 16) instead of the history sum

private:
    model::kv_cache kv_;
    std::vector<float> logits_;
};

inline request greedy(std::vector<int32_t> prompt, int n_predict, std::map<int, sequence_result>& out, int key) {
    request r;
    r.prompt = std::move(prompt);
    r.gp.n_predict = n_predict;
    r.gp.sampling.temperature = 0;
    r.on_done = [&out, key](const sequence_result& res) { out[key] = res; };
    return r;
}

// What the prompt generates on a fresh cache with prefix caching off.
inline std::vector<int32_t> uncached(const std::vector<int32_t>& prompt, int n_predict) {
    history_runner fr(1, 256, 0);
    fr.kv().set_prefix_caching(false);
    scheduler sch(fr, scheduler_params{});
    std::map<int, sequence_result> out;
    sch.submit(greedy(prompt, n_predict, out, 0));
    sch.run_until_idle();
    EXPECT_EQ(out[0].n_cached, 0);
    return out[0].tokens;
}

}  // namespace edgellm::testing
