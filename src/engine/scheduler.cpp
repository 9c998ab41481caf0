// Continuous-batching scheduler: admission from a FIFO queue by free KV slots and blocks, a
// per-step token budget shared by decode tokens (first) and prefill chunks, preemption by
// recompute when the pool runs out, and sampling of every sequence whose logits came back.
#include "engine/scheduler.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/timing.h"

namespace edgellm::engine {

struct scheduler::sequence {
    uint64_t id = 0;
    request req;
    std::vector<int32_t> tokens;  // prompt, then every accepted generated token
    int64_t n_prompt = 0;
    int64_t n_eval = 0;           // tokens[0..n_eval) are in the KV cache of `slot`
    int slot = -1;
    sampling::sampler_chain chain{0};
    sequence_result res;
    stopwatch since_submit;
    bool done = false;
    bool preempted = false;  // dropped from the running batch this step
};

scheduler::scheduler(step_runner& runner, scheduler_params p) : runner_(runner), p_(std::move(p)) {
    if (p_.n_batch <= 0) throw usage_error(fmt::format("batch size must be positive, got {}", p_.n_batch));
    const int n_slots = runner_.kv().n_seq();
    if (p_.max_running <= 0 || p_.max_running > n_slots) p_.max_running = n_slots;
    for (int s = n_slots - 1; s >= 0; --s) free_slots_.push_back(s);
    metrics_.kv_blocks_total = runner_.kv().n_blocks();
    update_kv_metrics();
}

scheduler::~scheduler() = default;

uint64_t scheduler::submit(request r) {
    model::kv_cache& kv = runner_.kv();
    const int64_t n_vocab = runner_.n_vocab();
    if (r.prompt.empty()) throw usage_error("the prompt is empty (start from the BOS token instead)");
    if (static_cast<int64_t>(r.prompt.size()) >= kv.n_ctx())
        throw usage_error(fmt::format("the prompt has {} tokens but the context holds only {}", r.prompt.size(),
                                      kv.n_ctx()));
    if (model::kv_cache::blocks_for(static_cast<int64_t>(r.prompt.size()) + 1) > kv.n_blocks())
        throw usage_error(fmt::format("the prompt has {} tokens but the KV cache holds only {} positions",
                                      r.prompt.size(), kv.n_blocks() * model::k_kv_block_size));
    for (size_t i = 0; i < r.prompt.size(); ++i)
        if (r.prompt[i] < 0 || r.prompt[i] >= n_vocab)
            throw usage_error(fmt::format("prompt token {} (index {}) is outside the vocabulary of {} tokens",
                                          r.prompt[i], i, n_vocab));
    if (r.gp.n_predict <= 0)
        throw usage_error(fmt::format("the number of tokens to generate must be positive, got {}", r.gp.n_predict));
    if (r.slot >= kv.n_seq()) throw usage_error(fmt::format("KV slot {} out of range", r.slot));
    sampling::validate(r.gp.sampling);
    if (p_.exclusive && r.slot >= 0)
        throw usage_error("pinned KV slots are not supported with an exclusive (speculative) runner");
    if (p_.exclusive && r.gp.sampling.grammar)
        throw usage_error("constrained decoding (a grammar or JSON schema) is not supported with speculative decoding");
    if (p_.exclusive && r.gp.logprobs >= 0)
        throw usage_error("logprobs are not supported with speculative decoding");
    if (p_.exclusive.check) p_.exclusive.check(r);

    auto s = std::make_unique<sequence>();
    std::shared_ptr<const sampling::token_vocab> vocab;
    if (r.gp.sampling.grammar) {
        if (!p_.vocab) throw usage_error("constrained decoding needs the model's vocabulary");
        vocab = p_.vocab();
    }
    s->chain = sampling::sampler_chain::from_params(r.gp.sampling, std::move(vocab));
    s->tokens = r.prompt;
    s->n_prompt = static_cast<int64_t>(r.prompt.size());
    s->res.n_prompt = s->n_prompt;
    s->req = std::move(r);
    for (int32_t t : s->tokens) s->chain.accept(t);
    std::lock_guard lock(mu_);
    if (metrics_.waiting.load() >= static_cast<int64_t>(p_.max_queue)) {
        ++metrics_.requests_rejected;
        throw queue_full(fmt::format("the server is busy: {} requests are already waiting", p_.max_queue));
    }
    s->id = next_id_++;
    const uint64_t id = s->id;
    incoming_.push_back(std::move(s));
    ++metrics_.requests_submitted;
    ++metrics_.waiting;
    cv_.notify_all();
    return id;
}

void scheduler::cancel(uint64_t id) {
    std::lock_guard lock(mu_);
    cancelled_.insert(id);
    cv_.notify_all();
}

void scheduler::update_kv_metrics() { metrics_.kv_blocks_used = runner_.kv().n_used_blocks(); }

void scheduler::finish(sequence& s, const std::string& reason, const std::string& err) {
    model::kv_cache& kv = runner_.kv();
    s.done = true;
    s.res.stop_reason = reason;
    s.res.error = err;
    if (s.slot >= 0) {
        s.res.n_kv = kv.seq_len(s.slot);
        if (s.req.slot < 0) kv.clear(s.slot);  // pinned slots keep their KV for the caller
        free_slots_.push_back(s.slot);
        s.slot = -1;
        --metrics_.running;
    } else {
        --metrics_.waiting;
    }
    ++metrics_.requests_finished;
    if (reason == "cancelled") ++metrics_.requests_cancelled;
    update_kv_metrics();
    if (s.req.on_done) s.req.on_done(s.res);
}

// Drops the victim's KV (it is recomputed from its tokens when admitted again); the caller
// moves preempted sequences back to the queue once it is done walking the running batch.
void scheduler::preempt(sequence& victim) {
    runner_.kv().clear(victim.slot);
    free_slots_.push_back(victim.slot);
    victim.slot = -1;
    victim.n_eval = 0;
    victim.preempted = true;
    ++victim.res.n_preempted;
    ++metrics_.preemptions;
}

// Reserves KV blocks for s up to n_pos positions. While the pool is short, the newest running
// sequence is preempted; when that is s itself, s waits (false).
bool scheduler::reserve_or_preempt(sequence& s, int64_t n_pos) {
    model::kv_cache& kv = runner_.kv();
    while (!kv.reserve(s.slot, n_pos)) {
        sequence* victim = nullptr;
        for (auto it = running_.rbegin(); it != running_.rend(); ++it)
            if (!(*it)->done && (*it)->slot >= 0 && (*it)->req.slot < 0) {
                victim = it->get();
                break;
            }
        if (!victim) return false;
        preempt(*victim);
        if (victim == &s) return false;
    }
    return true;
}

void scheduler::admit() {
    model::kv_cache& kv = runner_.kv();
    while (!waiting_.empty() && static_cast<int>(running_.size()) < p_.max_running) {
        sequence& s = *waiting_.front();
        int slot = -1;
        if (s.req.slot >= 0) {
            auto it = std::find(free_slots_.begin(), free_slots_.end(), s.req.slot);
            if (it == free_slots_.end()) break;  // its slot is busy: keep the order
            slot = *it;
            free_slots_.erase(it);
        } else {
            if (free_slots_.empty()) break;
            slot = free_slots_.back();
            free_slots_.pop_back();
        }
        int64_t keep = 0;
        if (s.req.slot >= 0 && s.res.n_preempted == 0 && s.n_eval == 0) {
            // At least the last prompt token is evaluated again: its logits pick the first token.
            keep = std::clamp<int64_t>(s.req.n_cached, 0, std::min(kv.seq_len(slot), s.n_prompt - 1));
            s.res.n_cached = keep;
        }
        kv.truncate(slot, std::min(kv.seq_len(slot), keep));
        // The whole remaining prompt must fit in the free blocks now, so admission does not
        // start a sequence that would stall half-way (chunks then only wait on the budget).
        const int64_t need = kv.blocks_needed(slot, static_cast<int64_t>(s.tokens.size()) + 1);
        if (need > kv.n_free_blocks()) {
            kv.truncate(slot, 0);
            free_slots_.push_back(slot);
            break;
        }
        s.slot = slot;
        s.n_eval = keep;
        if (s.res.n_preempted == 0) s.res.queue_ms = s.since_submit.elapsed_ms();
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        --metrics_.waiting;
        ++metrics_.running;
    }
}

bool scheduler::step() {
    // New requests and cancellations from other threads.
    std::unordered_set<uint64_t> cancelled;
    {
        std::lock_guard lock(mu_);
        while (!incoming_.empty()) {
            waiting_.push_back(std::move(incoming_.front()));
            incoming_.pop_front();
        }
        cancelled.swap(cancelled_);
    }
    if (!cancelled.empty()) {
        for (auto& s : running_)
            if (cancelled.count(s->id)) finish(*s, "cancelled");
        for (auto& s : waiting_)
            if (cancelled.count(s->id)) finish(*s, "cancelled");
        std::erase_if(running_, [](const auto& s) { return s->done; });
        std::erase_if(waiting_, [](const auto& s) { return s->done; });
    }
    if (p_.exclusive) return step_exclusive();
    admit();
    if (running_.empty()) {
        if (!waiting_.empty())  // validated to fit an empty pool: only reachable with pinned slots busy
            for (auto& s : waiting_) finish(*s, "error", "no KV slot could be given to the request");
        waiting_.clear();
        return false;
    }

    // Schedule: one token for each decoding sequence, then prefill chunks in admission order,
    // within the token budget.
    batch_.clear();
    struct entry {
        sequence* s;
        int64_t n;  // tokens of s in this step
        bool prefill;
    };
    std::vector<entry> plan;
    int64_t budget = p_.n_batch;
    for (int pass = 0; pass < 2 && budget > 0; ++pass) {
        for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
            sequence& s = *running_[i];
            if (s.done || s.slot < 0) continue;
            const int64_t remaining = static_cast<int64_t>(s.tokens.size()) - s.n_eval;
            const bool decoding = remaining == 1 && !s.res.tokens.empty();
            if ((pass == 0) != decoding) continue;
            const int64_t n = std::min(remaining, budget);
            if (!reserve_or_preempt(s, s.n_eval + n)) continue;
            plan.push_back({&s, n, !decoding});
            budget -= n;
        }
    }
    // A preempted sequence may already have been planned: drop it, and queue it again in front.
    std::erase_if(plan, [](const entry& e) { return e.s->slot < 0; });
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
        if (!(*it)->preempted) continue;
        (*it)->preempted = false;
        waiting_.push_front(std::move(*it));
        --metrics_.running;
        ++metrics_.waiting;
    }
    std::erase_if(running_, [](const auto& s) { return !s; });
    update_kv_metrics();
    if (plan.empty()) return true;  // everything was preempted this step: admit again next step

    std::vector<sequence*> outputs;
    for (const entry& e : plan) {
        sequence& s = *e.s;
        for (int64_t i = 0; i < e.n; ++i) {
            const int64_t pos = s.n_eval + i;
            const bool last = pos + 1 == static_cast<int64_t>(s.tokens.size());
            batch_.add(s.tokens[static_cast<size_t>(pos)], pos, s.slot, last);
        }
        if (s.n_eval + e.n == static_cast<int64_t>(s.tokens.size())) outputs.push_back(&s);
    }

    // Execute.
    stopwatch sw;
    std::span<const float> logits;
    try {
        logits = runner_.eval(batch_);
    } catch (const std::exception& ex) {
        // A failed pass leaves the cache of these sequences undefined: end them with the reason.
        for (const entry& e : plan) finish(*e.s, "error", ex.what());
        std::erase_if(running_, [](const auto& s) { return s->done; });
        return true;
    }
    const double step_ms = sw.elapsed_ms();
    ++metrics_.steps;
    metrics_.last_batch_tokens = static_cast<int64_t>(batch_.size());
    metrics_.last_batch_seqs = static_cast<int64_t>(plan.size());

    // Update.
    const size_t n_vocab = static_cast<size_t>(runner_.n_vocab());
    for (const entry& e : plan) {
        e.s->n_eval += e.n;
        if (e.prefill) {
            e.s->res.prefill_ms += step_ms;
            metrics_.prompt_tokens += static_cast<uint64_t>(e.n);
        } else {
            e.s->res.decode_ms += step_ms;
            ++e.s->res.n_decode;
        }
    }
    for (size_t r = 0; r < outputs.size(); ++r) {
        sequence& s = *outputs[r];
        std::span<const float> row = logits.subspan(r * n_vocab, n_vocab);
        sw.reset();
        int32_t tok = -1;
        try {
            tok = s.chain.sample(row);
        } catch (const std::exception& ex) {  // a NaN logit, a grammar too ambiguous to follow
            finish(s, "error", ex.what());
            continue;
        }
        s.res.sample_ms += sw.elapsed_ms();
        const double t_ms = s.since_submit.elapsed_ms();
        if (s.res.tokens.empty()) s.res.first_token_ms = t_ms;
        s.res.latency_ms = t_ms;
        const auto& extra = s.req.gp.extra_eog_ids;
        const bool eog = std::find(p_.eog_ids.begin(), p_.eog_ids.end(), tok) != p_.eog_ids.end() ||
                         std::find(extra.begin(), extra.end(), tok) != extra.end();
        if (eog && !s.req.gp.ignore_eos) {
            finish(s, "eos");
            continue;
        }
        try {
            s.chain.accept_generated(tok);
        } catch (const std::exception& ex) {
            finish(s, "error", ex.what());
            continue;
        }
        s.res.tokens.push_back(tok);
        s.tokens.push_back(tok);
        ++metrics_.generated_tokens;
        if (s.req.gp.logprobs >= 0) {
            s.res.logprobs.push_back(sampling::log_softmax_at(row, tok, s.req.gp.logprobs));
            if (s.req.on_logprob) s.req.on_logprob(s.res.logprobs.back());
        }
        bool keep_going = true;
        if (s.req.on_token) {
            try {
                keep_going = s.req.on_token(tok);
            } catch (const std::exception& ex) {
                finish(s, "error", ex.what());
                continue;
            }
        }
        if (!keep_going)
            finish(s, "cancelled");
        else if (s.chain.grammar_done())  // the grammar allows nothing more: the output is complete
            finish(s, "eos");
        else if (static_cast<int64_t>(s.res.tokens.size()) >= s.req.gp.n_predict)
            finish(s, "length");
        else if (s.n_eval >= runner_.kv().n_ctx())
            finish(s, "context");
    }
    std::erase_if(running_, [](const auto& s) { return s->done; });
    update_kv_metrics();
    return true;
}

// One whole request through the exclusive runner (the caller has taken in new requests and
// cancellations). The KV cache belongs to the runner meanwhile: no slot is taken here.
bool scheduler::step_exclusive() {
    if (waiting_.empty()) return false;
    std::unique_ptr<sequence> owned = std::move(waiting_.front());
    waiting_.pop_front();
    sequence& s = *owned;
    --metrics_.waiting;
    ++metrics_.running;
    metrics_.last_batch_seqs = 1;
    s.res.queue_ms = s.since_submit.elapsed_ms();
    auto on_token = [&](int32_t tok) {
        {
            std::lock_guard lock(mu_);
            if (cancelled_.count(s.id)) return false;
        }
        ++metrics_.generated_tokens;
        return s.req.on_token ? s.req.on_token(tok) : true;
    };
    sequence_result r;
    try {
        r = p_.exclusive.run(s.req, on_token);
    } catch (const std::exception& ex) {
        r.stop_reason = "error";
        r.error = ex.what();
    }
    r.n_prompt = s.n_prompt;
    r.queue_ms = s.res.queue_ms;
    if (!r.tokens.empty()) r.first_token_ms += r.queue_ms;  // the runner counts from its own start
    r.latency_ms = s.since_submit.elapsed_ms();
    metrics_.prompt_tokens += static_cast<uint64_t>(s.n_prompt);
    metrics_.draft_tokens += static_cast<uint64_t>(r.n_drafted);
    metrics_.draft_accepted += static_cast<uint64_t>(r.n_accepted);
    --metrics_.running;
    ++metrics_.requests_finished;
    if (r.stop_reason == "cancelled") ++metrics_.requests_cancelled;
    {
        std::lock_guard lock(mu_);
        cancelled_.erase(s.id);
    }
    update_kv_metrics();
    if (s.req.on_done) s.req.on_done(r);
    return true;
}

void scheduler::run_until_idle() {
    while (step()) {
    }
}

void scheduler::serve() {
    for (;;) {
        {
            std::unique_lock lock(mu_);
            if (stop_) break;
            if (running_.empty() && waiting_.empty())
                cv_.wait(lock, [&] { return stop_ || !incoming_.empty() || !cancelled_.empty(); });
            if (stop_) break;
        }
        step();
    }
    // Whatever is left ends as cancelled, so no caller waits forever.
    std::deque<std::unique_ptr<sequence>> left;
    {
        std::lock_guard lock(mu_);
        left.swap(incoming_);
    }
    for (auto& s : running_) finish(*s, "cancelled");
    for (auto& s : waiting_) finish(*s, "cancelled");
    for (auto& s : left) {
        waiting_.push_back(std::move(s));
        finish(*waiting_.back(), "cancelled");
    }
    running_.clear();
    waiting_.clear();
}

void scheduler::stop() {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
}

}  // namespace edgellm::engine
