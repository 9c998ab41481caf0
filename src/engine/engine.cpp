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
#include "device/cpu_info.h"
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

namespace {
void check_engine_params(const engine_params& p) {
    if (p.n_ctx < 0) throw usage_error(fmt::format("context size must be positive, got {}", p.n_ctx));
    if (p.n_batch <= 0) throw usage_error(fmt::format("batch size must be positive, got {}", p.n_batch));
    if (p.n_threads < 0) throw usage_error(fmt::format("thread count must be positive, got {}", p.n_threads));
    if (p.n_threads_batch < 0)
        throw usage_error(fmt::format("prefill thread count must be positive, got {}", p.n_threads_batch));
    if (p.n_seq <= 0) throw usage_error(fmt::format("sequence count must be positive, got {}", p.n_seq));
    if (p.n_kv_cells < 0) throw usage_error(fmt::format("KV cache size must be positive, got {}", p.n_kv_cells));
    if (p.n_gpu_layers > 0 && p.deterministic)  // the batch-invariant kernels are the CPU ones
        throw usage_error(fmt::format("--deterministic runs on the CPU kernels only: drop -ngl {} or --deterministic",
                                      p.n_gpu_layers));
    if (p.n_gpu_layers > 0)  // refused before the model is read when no GPU can be used at all
        if (const std::string why = model::gpu_offload_unavailable_reason(); !why.empty())
            throw usage_error(fmt::format("-ngl {}: {}", p.n_gpu_layers, why));
}

// The context a session uses: the requested one, or the model's trained context capped.
int64_t resolve_ctx(const engine_params& p, const model::model_hparams& hp) {
    // Sliding-window layers mask keys older than the window (forward_pass::attend), so the context
    // is limited by the trained context only.
    const int64_t n_ctx = p.n_ctx == 0 ? std::min(hp.n_ctx_train, k_default_max_ctx) : p.n_ctx;
    if (n_ctx > hp.n_ctx_train)
        throw usage_error(
            fmt::format("context size {} exceeds the model's maximum of {} tokens", n_ctx, hp.n_ctx_train));
    return n_ctx;
}

// Refuses (usage_error) a KV cache, plus the weights unless they are already resident, that
// does not fit the budget: the explicit one (which always counts the weights), else what this
// machine and cgroup have available now.
void check_memory(const model::model& m, const engine_params& p, bool weights_resident) {
    uint64_t budget = p.memory_budget_bytes;
    const bool explicit_budget = budget != 0;
    if (!explicit_budget)
        budget = device::usable_memory_bytes(device::read_memory_info("/"), device::read_cgroup_limits("/"));
    if (budget == 0) return;  // unknown (no /proc/meminfo): nothing to check against
    const uint64_t weights = weights_resident && !explicit_budget ? 0 : m.file().file_size();
    const uint64_t kv = model::kv_cache::bytes_for(m.hparams(), p.n_ctx, p.kv_type, p.n_seq, p.n_kv_cells, p.swa_full);
    if (weights + kv <= budget) return;
    if (weights == 0)
        throw usage_error(fmt::format("not enough memory: a KV cache of {} tokens needs {}, but only {} is available "
                                      "besides the loaded model; use a smaller context (-c)",
                                      p.n_ctx, format_bytes(kv), format_bytes(budget)));
    throw usage_error(fmt::format(
        "not enough memory: the model needs {} for its weights plus {} for a KV cache of {} tokens, but only {} "
        "is available; use a smaller model or quantization, or a smaller context (-c)",
        format_bytes(weights), format_bytes(kv), p.n_ctx, format_bytes(budget)));
}
}  // namespace

std::shared_ptr<const loaded_model> load_model_for(engine_params& p,
                                                   const std::function<void(engine_params&, const model::model_hparams&)>& adjust) {
    check_engine_params(p);
    // A stored model's name (`edgellm pull`) stands for its file everywhere a model is loaded.
    p.model_path = store::resolve_model(p.model_path);
    // The memory check runs on the mapped file, before the (slow, memory-hungry) repacking.
    return loaded_model::load(p.model_path, p.repack, p.n_threads, [&](const model::model& m) {
        if (adjust) adjust(p, m.hparams());
        check_engine_params(p);
        p.n_ctx = resolve_ctx(p, m.hparams());
        if (!p.fallback) {
            check_memory(m, p, /*weights_resident=*/false);
            return;
        }
        // The fallback chain, each rung checked on the mapped file before any repacking.
        const engine_params asked = p;
        std::vector<std::string> tried;
        std::string first_error;
        std::vector<ggml_type> kv_types = {asked.kv_type};
        for (ggml_type t : {ggml_type::q8_0, ggml_type::q4_0})
            if (model::kv_cache::bytes_for(m.hparams(), 1, t, 1, 0) < model::kv_cache::bytes_for(m.hparams(), 1, asked.kv_type, 1, 0) &&
                m.hparams().head_dim % type_traits(t).block_size == 0)
                kv_types.push_back(t);
        for (ggml_type kv : kv_types) {
            for (int64_t ctx = asked.n_ctx;; ctx = std::max(k_fallback_min_ctx, ctx / 2)) {
                p.kv_type = kv;
                p.n_ctx = ctx;
                try {
                    check_memory(m, p, /*weights_resident=*/false);
                    if (kv != asked.kv_type || ctx != asked.n_ctx)
                        p.fallback_note = fmt::format("fallback: {} KV cache, context {} (asked: {}, {}; {} did not fit)",
                                                      type_name(kv), ctx, type_name(asked.kv_type), asked.n_ctx,
                                                      fmt::join(tried, ", "));
                    return;
                } catch (const usage_error& e) {
                    if (first_error.empty()) first_error = e.what();
                    tried.push_back(fmt::format("{} x {}", type_name(kv), ctx));
                }
                if (ctx <= k_fallback_min_ctx || ctx <= 1) break;
            }
        }
        throw usage_error(fmt::format("{} (fallback tried, every rung too big: {})",
                                      first_error, fmt::join(tried, ", ")));
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
    params_.n_ctx = resolve_ctx(params_, lm_->hparams());
    check_memory(lm_->get_model(), params_, /*weights_resident=*/true);
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
    params_.n_batch = std::min(params_.n_batch, params_.n_ctx * params_.n_seq);
    kv_ = std::make_unique<model::kv_cache>(hp, params_.n_ctx, params_.kv_type, params_.n_seq, params_.n_kv_cells,
                                            params_.swa_full);
    forward_ = std::make_unique<model::forward_pass>(lm_->get_model(), params_.n_batch, params_.n_ctx, params_.n_threads);
    forward_->set_n_threads_batch(params_.n_threads_batch);
    forward_->set_flash_attn(params_.flash_attn);
    forward_->set_deterministic(params_.deterministic);
    if (params_.n_gpu_layers > 0 && params_.fallback) {
        // The "fewer GPU layers" rung: what the device cannot hold runs on the CPU (whose copy of
        // every layer is already loaded); an unsupported model is still refused by create().
        const model::model& m = lm_->get_model();
        const model::gpu_layer_choice c = model::choose_gpu_layers(
            params_.n_gpu_layers, hp.n_layer, model::gpu_free_memory(), [&](int n) {
                return model::gpu_layers_device_bytes(m, n, params_.n_ctx, params_.kv_type, params_.n_batch);
            });
        if (!c.note.empty()) {
            params_.fallback_note += (params_.fallback_note.empty() ? "" : "; ") + c.note;
            params_.n_gpu_layers = c.n_gpu_layers;
        }
    }
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
