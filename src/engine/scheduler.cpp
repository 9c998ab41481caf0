// Continuous-batching scheduler: admission from a FIFO queue by free KV slots and blocks, a
// per-step token budget shared by decode tokens (first) and prefill chunks, preemption by
// recompute when the pool runs out, and sampling of every sequence whose logits came back.
#include "engine/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

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
    metrics_.kv_bytes = runner_.kv().size_bytes();
    update_kv_metrics();
}

scheduler::~scheduler() = default;

void check_prompt(std::span<const int32_t> prompt, int64_t n_ctx, int64_t n_vocab) {
    if (prompt.empty()) throw usage_error("the prompt is empty (start from the BOS token instead)");
    if (static_cast<int64_t>(prompt.size()) >= n_ctx)
        throw usage_error(fmt::format("the prompt has {} tokens but the context holds only {} (raise -c)", prompt.size(),
                                      n_ctx));
    for (size_t i = 0; i < prompt.size(); ++i)
        if (prompt[i] < 0 || prompt[i] >= n_vocab)
            throw usage_error(fmt::format("prompt token {} (index {}) is outside the vocabulary of {} tokens", prompt[i],
                                          i, n_vocab));
}

uint64_t scheduler::submit(request r) {
    model::kv_cache& kv = runner_.kv();
    check_prompt(r.prompt, kv.n_ctx(), runner_.n_vocab());
    if (model::kv_cache::blocks_for(static_cast<int64_t>(r.prompt.size()) + 1) > kv.n_blocks())
        throw usage_error(fmt::format("the prompt has {} tokens but the KV cache holds only {} positions",
                                      r.prompt.size(), kv.n_blocks() * model::k_kv_block_size));
    if (r.gp.n_predict <= 0)
        throw usage_error(fmt::format("the number of tokens to generate must be positive, got {}", r.gp.n_predict));
    if (r.slot >= kv.n_seq()) throw usage_error(fmt::format("KV slot {} out of range", r.slot));
    sampling::validate(r.gp.sampling);

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

void scheduler::update_kv_metrics() {
    metrics_.kv_blocks_used = runner_.kv().n_used_blocks();
    metrics_.kv_blocks_cached = runner_.kv().n_cached_blocks();
}

void scheduler::finish(sequence& s, stop_reason reason, const std::string& err) {
    model::kv_cache& kv = runner_.kv();
    s.done = true;
    s.res.stop = reason;
    s.res.error = err;
    if (s.slot >= 0) {
        // Only the first n_eval positions hold KV of its tokens (not rejected drafts, nor what a
        // failed pass wrote); their full blocks stay in the prefix cache once released.
        if (kv.seq_len(s.slot) > s.n_eval) {
            // A window-sized cache may not roll back past a long failed pass: then nothing is kept.
            if (kv.can_truncate(s.slot, s.n_eval))
                kv.truncate(s.slot, s.n_eval);
            else
                kv.clear(s.slot);
        }
        s.res.n_kv = kv.seq_len(s.slot);
        if (s.req.slot < 0) {  // pinned slots keep their KV for the caller
            kv.cache_blocks(s.slot, s.tokens);
            kv.clear(s.slot);
        }
        if (p_.spec.drafter) p_.spec.drafter->release(s.slot);
        free_slots_.push_back(s.slot);
        s.slot = -1;
        --metrics_.running;
    } else {
        --metrics_.waiting;
    }
    ++metrics_.requests_finished;
    if (reason == stop_reason::cancelled) ++metrics_.requests_cancelled;
    update_kv_metrics();
    if (s.req.on_done) s.req.on_done(s.res);
}

// Drops the victim's KV (it is recomputed from its tokens when admitted again); the caller
// moves preempted sequences back to the queue once it is done walking the running batch.
void scheduler::preempt(sequence& victim) {
    runner_.kv().clear(victim.slot);
    if (p_.spec.drafter) p_.spec.drafter->release(victim.slot);
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
            // A window-sized cache cannot roll back past its sliding window: the prompt then runs whole.
            if (!kv.can_truncate(slot, keep)) keep = 0;
            s.res.n_cached = keep;
        }
        kv.truncate(slot, std::min(kv.seq_len(slot), keep));
        if (s.req.slot < 0 && s.req.reuse_prefix) {
            // The last token is evaluated again in any case: its logits pick the next token.
            keep = kv.attach_prefix(slot, s.tokens, static_cast<int64_t>(s.tokens.size()) - 1);
        }
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
        if (s.req.slot < 0) {
            if (s.res.n_preempted == 0) s.res.n_cached = keep;
            metrics_.prefix_hit_tokens += static_cast<uint64_t>(keep);
            metrics_.prefix_hit_blocks += static_cast<uint64_t>(model::kv_cache::blocks_for(keep));
        }
        if (s.res.n_preempted == 0) s.res.queue_ms = s.since_submit.elapsed_ms();
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        --metrics_.waiting;
        ++metrics_.running;
    }
}

std::vector<int32_t> ngram_draft(std::span<const int32_t> tokens, int n, int max) {
    const int64_t len = static_cast<int64_t>(tokens.size());
    if (max <= 0) return {};
    for (int64_t m = std::min<int64_t>(n, len - 1); m >= 1; --m) {
        const auto tail = tokens.subspan(static_cast<size_t>(len - m));
        // The latest start j < len - m whose m tokens equal the tail (its continuation exists).
        for (int64_t j = len - m - 1; j >= 0; --j) {
            if (!std::equal(tail.begin(), tail.end(), tokens.begin() + j)) continue;
            const int64_t from = j + m;
            const int64_t n_out = std::min<int64_t>(max, len - from);
            return {tokens.begin() + from, tokens.begin() + from + n_out};
        }
    }
    return {};
}

int64_t step_plan::n_tokens() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += static_cast<int64_t>(s.tokens.size());
    return n;
}

scheduler::sequence* scheduler::find_running(uint64_t id) {
    for (auto& s : running_)
        if (s && s->id == id) return s.get();
    return nullptr;
}

step_plan scheduler::plan() {
    step_plan out;
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
            if (cancelled.count(s->id)) finish(*s, stop_reason::cancelled);
        for (auto& s : waiting_)
            if (cancelled.count(s->id)) finish(*s, stop_reason::cancelled);
        std::erase_if(running_, [](const auto& s) { return s->done; });
        std::erase_if(waiting_, [](const auto& s) { return s->done; });
    }
    admit();
    if (running_.empty()) {
        if (!waiting_.empty())  // validated to fit an empty pool: only reachable with pinned slots busy
            for (auto& s : waiting_) finish(*s, stop_reason::error, "no KV slot could be given to the request");
        waiting_.clear();
        out.idle = true;
        return out;
    }

    // One token (plus its drafts) for each decoding sequence, then prefill chunks in admission
    // order, within the token budget.
    const int64_t n_ctx = runner_.kv().n_ctx();
    int64_t budget = p_.n_batch;
    // How many tokens a decoding sequence may draft: what is left to generate but one (the last
    // token of a round comes from the target itself), what the context and the budget hold.
    auto draft_room = [&](const sequence& s, int64_t budget_left) {
        const int64_t left = s.req.gp.n_predict - static_cast<int64_t>(s.res.tokens.size());
        const int64_t k = std::min<int64_t>({p_.spec.draft_max, left - 1, n_ctx - s.n_eval - 1, budget_left - 1});
        return k >= std::max(1, p_.spec.draft_min) ? static_cast<int>(k) : 0;
    };
    auto is_decoding = [](const sequence& s) {
        return !s.done && s.slot >= 0 && static_cast<int64_t>(s.tokens.size()) - s.n_eval == 1 && !s.res.tokens.empty();
    };
    // A draft model proposes for every decoding sequence at once (batched over them).
    std::map<uint64_t, std::vector<int32_t>> proposed;
    if (p_.spec.drafter) {
        std::vector<draft_source::want> wants;
        std::vector<uint64_t> ids;
        for (const auto& s : running_)
            if (is_decoding(*s))
                if (const int k = draft_room(*s, budget); k > 0) {
                    wants.push_back({s->slot, s->tokens, k});
                    ids.push_back(s->id);
                }
        if (!wants.empty()) {
            auto drafts = p_.spec.drafter->propose(wants);
            for (size_t i = 0; i < ids.size() && i < drafts.size(); ++i) proposed[ids[i]] = std::move(drafts[i]);
        }
    }
    std::vector<std::pair<sequence*, planned_sequence>> planned;
    for (int pass = 0; pass < 2 && budget > 0; ++pass) {
        for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
            sequence& s = *running_[i];
            if (s.done || s.slot < 0) continue;
            const int64_t remaining = static_cast<int64_t>(s.tokens.size()) - s.n_eval;
            const bool decoding = remaining == 1 && !s.res.tokens.empty();
            if ((pass == 0) != decoding) continue;
            int64_t n = std::min(remaining, budget);
            std::vector<int32_t> drafts;
            if (decoding && p_.spec.enabled()) {
                const int k = draft_room(s, budget);
                if (p_.spec.drafter) {
                    if (auto it = proposed.find(s.id); it != proposed.end()) drafts = std::move(it->second);
                    if (static_cast<int>(drafts.size()) > k) drafts.resize(static_cast<size_t>(k));
                } else if (k > 0) {
                    drafts = ngram_draft(s.tokens, p_.spec.ngram, k);
                }
                if (static_cast<int>(drafts.size()) < std::max(1, p_.spec.draft_min)) drafts.clear();
                n += static_cast<int64_t>(drafts.size());
            }
            // Drafts take free blocks only: never preempt another sequence for them.
            if (!drafts.empty() && !runner_.kv().reserve(s.slot, s.n_eval + n)) {
                n -= static_cast<int64_t>(drafts.size());
                drafts.clear();
            }
            if (!reserve_or_preempt(s, s.n_eval + n)) continue;
            planned_sequence ps;
            ps.id = s.id;
            ps.slot = s.slot;
            ps.pos = s.n_eval;
            const auto first = s.tokens.begin() + s.n_eval;
            ps.tokens.assign(first, first + (n - static_cast<int64_t>(drafts.size())));
            ps.tokens.insert(ps.tokens.end(), drafts.begin(), drafts.end());
            ps.n_draft = static_cast<int>(drafts.size());
            ps.prefill = !decoding;
            ps.samples = s.n_eval + n - ps.n_draft == static_cast<int64_t>(s.tokens.size());
            planned.emplace_back(&s, std::move(ps));
            budget -= n;
        }
    }
    // A preempted sequence may already have been planned: drop it, and queue it again in front.
    std::erase_if(planned, [](const auto& e) { return e.first->slot < 0; });
    for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
        if (!(*it)->preempted) continue;
        (*it)->preempted = false;
        waiting_.push_front(std::move(*it));
        --metrics_.running;
        ++metrics_.waiting;
    }
    std::erase_if(running_, [](const auto& s) { return !s; });
    update_kv_metrics();
    for (auto& [s, ps] : planned) out.seqs.push_back(std::move(ps));
    return out;  // empty when everything was preempted this step: admit again next step
}

std::span<const float> scheduler::execute(const step_plan& p) {
    batch_.clear();
    for (const planned_sequence& ps : p.seqs) {
        const size_t n = ps.tokens.size();
        for (size_t i = 0; i < n; ++i)
            batch_.add(ps.tokens[i], ps.pos + static_cast<int64_t>(i), ps.slot,
                       ps.samples && i + static_cast<size_t>(ps.n_draft) + 1 >= n);
    }
    return runner_.eval(batch_);
}

// Records one picked token of s and applies every stop rule; false when s has ended.
bool scheduler::emit(sequence& s, int32_t tok, std::span<const float> row) {
    const double t_ms = s.since_submit.elapsed_ms();
    if (s.res.tokens.empty()) s.res.first_token_ms = t_ms;
    s.res.latency_ms = t_ms;
    const auto& extra = s.req.gp.extra_eog_ids;
    const bool eog = std::find(p_.eog_ids.begin(), p_.eog_ids.end(), tok) != p_.eog_ids.end() ||
                     std::find(extra.begin(), extra.end(), tok) != extra.end();
    if (eog && !s.req.gp.ignore_eos) {
        finish(s, stop_reason::eos);
        return false;
    }
    try {
        s.chain.accept_generated(tok);
    } catch (const std::exception& ex) {
        finish(s, stop_reason::error, ex.what());
        return false;
    }
    s.res.tokens.push_back(tok);
    s.tokens.push_back(tok);
    ++metrics_.generated_tokens;
    if (s.req.gp.logprobs >= 0) {  // of the raw logits the token was picked from
        s.res.logprobs.push_back(sampling::log_softmax_at(row, tok, s.req.gp.logprobs));
        if (s.req.on_logprob) s.req.on_logprob(s.res.logprobs.back());
    }
    bool keep_going = true;
    if (s.req.on_token) {
        try {
            keep_going = s.req.on_token(tok);
        } catch (const std::exception& ex) {
            finish(s, stop_reason::error, ex.what());
            return false;
        }
    }
    if (const stop_reason why = check_stop(s, keep_going); why != stop_reason::none) finish(s, why);
    return !s.done;
}

stop_reason scheduler::check_stop(const sequence& s, bool keep_going) const {
    if (!keep_going) return stop_reason::cancelled;
    if (s.chain.grammar_done()) return stop_reason::eos;  // the grammar allows nothing more: the output is complete
    if (static_cast<int64_t>(s.res.tokens.size()) >= s.req.gp.n_predict) return stop_reason::length;
    if (s.n_eval >= runner_.kv().n_ctx()) return stop_reason::context;
    return stop_reason::none;
}

void scheduler::update(const step_plan& p, std::span<const float> logits, double step_ms) {
    ++metrics_.steps;
    metrics_.last_batch_tokens = static_cast<int64_t>(p.n_tokens());
    metrics_.last_batch_seqs = static_cast<int64_t>(p.seqs.size());
    model::kv_cache& kv = runner_.kv();
    const size_t n_vocab = static_cast<size_t>(runner_.n_vocab());
    size_t row = 0;
    for (const planned_sequence& ps : p.seqs) {
        sequence* sp = find_running(ps.id);
        if (!sp) throw error(fmt::format("scheduler: planned sequence {} is not running", ps.id));
        sequence& s = *sp;
        const int64_t n_target = static_cast<int64_t>(ps.tokens.size()) - ps.n_draft;  // without the drafts
        if (ps.prefill) {
            s.res.prefill_ms += step_ms;
            metrics_.prompt_tokens += static_cast<uint64_t>(n_target);
        } else {
            s.res.decode_ms += step_ms;
            ++s.res.n_decode;
        }
        s.n_eval = ps.pos + n_target;
        if (!ps.samples) {
            kv.cache_blocks(s.slot, s.tokens);
            continue;
        }
        // Row i follows the pending token and drafts 0..i-1: sample it as plain decoding would;
        // the draft after it is kept only when it equals the pick.
        int n_accepted = 0;
        for (int i = 0; i <= ps.n_draft; ++i) {
            std::span<const float> r = logits.subspan((row + static_cast<size_t>(i)) * n_vocab, n_vocab);
            stopwatch sw;
            int32_t tok = -1;
            try {
                tok = s.chain.sample(r);
            } catch (const std::exception& ex) {  // a NaN logit, a grammar too ambiguous to follow
                finish(s, stop_reason::error, ex.what());
                break;
            }
            s.res.sample_ms += sw.elapsed_ms();
            if (!emit(s, tok, r)) break;
            if (i == ps.n_draft || tok != ps.tokens[static_cast<size_t>(n_target + i)]) break;
            ++n_accepted;
            ++s.n_eval;  // the accepted draft's KV is the one just computed
        }
        row += static_cast<size_t>(ps.n_draft) + 1;
        s.res.n_drafted += ps.n_draft;
        s.res.n_accepted += n_accepted;
        metrics_.draft_tokens += static_cast<uint64_t>(ps.n_draft);
        metrics_.draft_accepted += static_cast<uint64_t>(n_accepted);
        if (s.done) continue;
        if (kv.seq_len(s.slot) > s.n_eval) kv.truncate(s.slot, s.n_eval);  // the rejected drafts
        kv.cache_blocks(s.slot, s.tokens);
    }
    std::erase_if(running_, [](const auto& s) { return s->done; });
    update_kv_metrics();
}

bool scheduler::step() {
    const step_plan p = plan();
    if (p.idle) return false;
    if (p.seqs.empty()) return true;
    stopwatch sw;
    std::span<const float> logits;
    try {
        logits = execute(p);
    } catch (const std::exception& ex) {
        // A failed pass leaves the cache of these sequences undefined: end them with the reason.
        for (const planned_sequence& ps : p.seqs)
            if (sequence* s = find_running(ps.id)) finish(*s, stop_reason::error, ex.what());
        std::erase_if(running_, [](const auto& s) { return s->done; });
        return true;
    }
    update(p, logits, sw.elapsed_ms());
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
    for (auto& s : running_) finish(*s, stop_reason::cancelled);
    for (auto& s : waiting_) finish(*s, stop_reason::cancelled);
    for (auto& s : left) {
        waiting_.push_back(std::move(s));
        finish(*waiting_.back(), stop_reason::cancelled);
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
