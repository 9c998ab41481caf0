// Generation loop: one batched prefill of the prompt, then sample -> decode one token at a time.
#include "engine/engine.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/timing.h"
#include "core/units.h"
#include "engine/load_plan.h"
#include "model/gpu_layers.h"
#include "store/store.h"

namespace edgellm::engine {
namespace {

uint64_t proc_status_kb(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(key) + ":";
    while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) == 0) return std::stoull(line.substr(prefix.size())) * 1024;
    }
    return 0;
}

}  // namespace

uint64_t peak_rss_bytes() { return proc_status_kb("VmHWM"); }
uint64_t current_rss_bytes() { return proc_status_kb("VmRSS"); }

std::shared_ptr<const loaded_model> loaded_model::load(const std::string& path, bool repack, int n_threads,
                                                       const std::function<void(const model::model&)>& before_repack) {
    stopwatch sw;
    std::shared_ptr<loaded_model> lm(new loaded_model());
    lm->model_ = model::model::load(path);
    if (before_repack) before_repack(*lm->model_);
    if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (repack) lm->model_->repack(n_threads);
    try {
        lm->tok_ = tokenizer::from_gguf(lm->model_->file());
    } catch (const error& e) {
        lm->tokenizer_error_ = e.what();
    }
    const model::model_hparams& hp = lm->model_->hparams();
    for (int32_t id : {hp.eos_id, hp.eot_id, hp.eom_id})
        if (id >= 0) lm->eog_ids_.push_back(id);
    if (lm->tok_)
        for (int32_t id = 0; id < lm->tok_->n_vocab(); ++id)
            if (lm->tok_->is_eog(id)) lm->eog_ids_.push_back(id);
    std::sort(lm->eog_ids_.begin(), lm->eog_ids_.end());
    lm->eog_ids_.erase(std::unique(lm->eog_ids_.begin(), lm->eog_ids_.end()), lm->eog_ids_.end());
    lm->load_ms_ = sw.elapsed_ms();
    return lm;
}

bool loaded_model::is_eog(int32_t token) const {
    return std::binary_search(eog_ids_.begin(), eog_ids_.end(), token);
}

std::shared_ptr<const sampling::token_vocab> loaded_model::grammar_vocab() const {
    if (!tok_) throw usage_error("constrained decoding needs the model's tokenizer: " + tokenizer_error_);
    std::call_once(vocab_once_, [this] {
        std::vector<std::string> pieces(static_cast<size_t>(tok_->n_vocab()));
        for (int32_t id = 0; id < tok_->n_vocab(); ++id)  // control tokens: no bytes
            pieces[static_cast<size_t>(id)] = tok_->token_to_piece(id, /*render_special=*/false);
        vocab_ = std::make_shared<const sampling::token_vocab>(std::move(pieces), eog_ids_);
    });
    return vocab_;
}

std::shared_ptr<const loaded_model> load_model_for(engine_params& p,
                                                   const std::function<void(engine_params&, const model::model_hparams&)>& adjust) {
    check_engine_params(p);
    // A stored model's name (`edgellm pull`) stands for its file everywhere a model is loaded.
    p.model_path = store::resolve_model(p.model_path);
    // Open (mmap + hyperparameters) -> plan -> materialise: the plan (context, KV type, GPU layers,
    // fallback rung, or the refusal) is made on the mapped file, before the slow, memory-hungry
    // repacking.
    return loaded_model::load(p.model_path, p.repack, p.n_threads, [&](const model::model& m) {
        if (adjust) adjust(p, m.hparams());
        check_engine_params(p);
        apply_load_plan(plan_load(p, load_plan_model_of(m), available_memory(p, /*weights_resident=*/false)), p);
    });
}

engine::engine(const engine_params& p) : params_(p) {
    stopwatch sw;
    lm_ = load_model_for(params_);
    open();
    load_ms_ = sw.elapsed_ms();
}

engine::engine(std::shared_ptr<const loaded_model> m, const engine_params& p) : params_(p), lm_(std::move(m)) {
    stopwatch sw;
    if (!lm_) throw usage_error("engine: no model");
    check_engine_params(params_);
    apply_load_plan(plan_load(params_, load_plan_model_of(lm_->get_model()), available_memory(params_, /*weights_resident=*/true)),
                    params_);
    open();
    load_ms_ = sw.elapsed_ms();
}

void engine::open() {
    if (lm_->get_model().is_encoder())
        throw usage_error(fmt::format("model architecture '{}' is an encoder (an embedding model): it cannot generate "
                                      "text; use `edgellm embed` or the embeddings API",
                                      lm_->hparams().arch));
    if (params_.n_threads == 0) params_.n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const model::model_hparams& hp = lm_->hparams();
    // The plan (apply_load_plan) has set the context, KV type, batch and GPU layers.
    kv_ = std::make_unique<model::kv_cache>(hp, params_.n_ctx, params_.kv_type, params_.n_seq, params_.n_kv_cells,
                                            params_.swa_full);
    forward_ = std::make_unique<model::forward_pass>(lm_->get_model(), params_.n_batch, params_.n_ctx, params_.n_threads);
    forward_->set_n_threads_batch(params_.n_threads_batch);
    forward_->set_flash_attn(params_.flash_attn);
    forward_->set_deterministic(params_.deterministic);
    if (params_.n_gpu_layers > 0)
        forward_->set_gpu(model::gpu_layers::create(lm_->get_model(), params_.n_gpu_layers, params_.n_ctx,
                                                    params_.kv_type, params_.n_seq, params_.n_batch));
    kv_->set_prefix_caching(params_.prefix_cache && params_.n_gpu_layers == 0);
    runner_ = std::make_unique<forward_runner>(*forward_, *kv_, hp.n_vocab);
}

void engine::set_n_threads(int n) {
    if (n <= 0) throw usage_error(fmt::format("thread count must be positive, got {}", n));
    params_.n_threads = n;
    forward_->set_n_threads(n);
}

void engine::check_prompt(std::span<const int32_t> prompt) const {
    ::edgellm::engine::check_prompt(prompt, params_.n_ctx, hparams().n_vocab);
}

std::unique_ptr<scheduler> engine::make_scheduler(size_t max_queue, speculation_params spec) {
    scheduler_params sp;
    sp.spec = spec.enabled() ? std::move(spec) : params_.spec;
    sp.n_batch = params_.n_batch;
    sp.max_queue = max_queue;
    sp.eog_ids = lm_->eog_ids();
    sp.vocab = [lm = lm_] { return lm->grammar_vocab(); };
    return std::make_unique<scheduler>(*runner_, sp);
}

generation_stats engine::generate(std::span<const int32_t> prompt, const generation_params& gp,
                                  const token_callback& on_token, bool keep_kv) {
    check_prompt(prompt);  // before slot 0's KV is touched; scheduler::submit checks the rest
    generation_stats st;
    st.load_ms = load_ms_;
    st.kv_bytes = kv_->size_bytes();
    st.model_bytes = get_model().file().file_size();

    request r;
    r.prompt.assign(prompt.begin(), prompt.end());
    r.gp = gp;
    r.on_token = on_token;
    r.reuse_prefix = keep_kv;
    const bool pinned = keep_kv && !kv_->prefix_caching();
    if (pinned) {
        r.slot = 0;
        const size_t n = std::min(kv_tokens_.size(), static_cast<size_t>(kv_->seq_len(0)));
        size_t common = 0;
        while (common < n && common < prompt.size() && kv_tokens_[common] == prompt[common]) ++common;
        r.n_cached = static_cast<int64_t>(common);
    }
    kv_->truncate(0, std::min(r.n_cached, kv_->seq_len(0)));
    kv_tokens_.clear();
    // The scheduler's record of the sequence is the stats' own (generation_stats is a view of it).
    r.on_done = [&st](const sequence_result& out) { static_cast<sequence_result&>(st) = out; };
    scheduler_params sp;
    sp.n_batch = params_.n_batch;
    sp.max_running = 1;
    sp.spec = params_.spec;
    sp.eog_ids = lm_->eog_ids();
    sp.vocab = [lm = lm_] { return lm->grammar_vocab(); };
    scheduler sched(*runner_, sp);
    sched.submit(std::move(r));
    sched.run_until_idle();
    if (st.stop == stop_reason::error) throw error(st.error);
    st.peak_rss_bytes = peak_rss_bytes();
    if (pinned) {
        kv_tokens_.assign(prompt.begin(), prompt.end());
        kv_tokens_.insert(kv_tokens_.end(), st.tokens.begin(), st.tokens.end());
        kv_tokens_.resize(std::min(kv_tokens_.size(), static_cast<size_t>(kv_->seq_len(0))));
    } else {
        kv_->clear(0);
    }
    return st;
}

double generation_stats::prefill_tokens_per_s() const {
    return prefill_ms > 0 ? 1000.0 * static_cast<double>(n_prompt - n_cached) / prefill_ms : 0;
}

double generation_stats::decode_tokens_per_s() const {
    // With drafts a pass yields several tokens: count the tokens after the first (which the
    // prefill picked); without, one per pass.
    if (decode_ms <= 0) return 0;
    return 1000.0 * static_cast<double>(n_drafted > 0 ? n_gen() - 1 : n_decode) / decode_ms;
}

std::vector<float> engine::all_logits(std::span<const int32_t> tokens) {
    check_prompt(tokens);
    kv_->clear(0);
    kv_tokens_.clear();
    model::batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int64_t>(i), 0, true);
    std::span<const float> logits = forward_->eval(*kv_, b);
    return {logits.begin(), logits.end()};
}

}  // namespace edgellm::engine
