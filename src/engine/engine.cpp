// Generation loop: one batched prefill of the prompt, then sample -> decode one token at a time.
#include "engine/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/timing.h"
#include "core/units.h"
#include "device/cpu_info.h"

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

engine::engine(const engine_params& p) : params_(p) {
    stopwatch sw;
    if (p.n_ctx < 0) throw usage_error(fmt::format("context size must be positive, got {}", p.n_ctx));
    if (p.n_batch <= 0) throw usage_error(fmt::format("batch size must be positive, got {}", p.n_batch));
    if (p.n_threads < 0) throw usage_error(fmt::format("thread count must be positive, got {}", p.n_threads));
    if (p.n_seq <= 0) throw usage_error(fmt::format("sequence count must be positive, got {}", p.n_seq));
    model_ = model::model::load(p.model_path);
    const model::model_hparams& hp = model_->hparams();
    if (params_.n_ctx == 0) params_.n_ctx = std::min(hp.n_ctx_train, k_default_max_ctx);
    if (params_.n_ctx > hp.n_ctx_train)
        throw usage_error(fmt::format("context size {} exceeds the model's maximum of {} tokens", params_.n_ctx,
                                      hp.n_ctx_train));
    if (params_.n_threads == 0) params_.n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    params_.n_batch = std::min(params_.n_batch, params_.n_ctx);
    kv_ = std::make_unique<model::kv_cache>(hp, params_.n_ctx, params_.kv_type, params_.n_seq);
    check_memory();
    if (params_.repack) model_->repack(params_.n_threads);
    forward_ = std::make_unique<model::forward_pass>(*model_, params_.n_batch, params_.n_ctx, params_.n_threads);
    load_ms_ = sw.elapsed_ms();
}

void engine::check_memory() const {
    uint64_t budget = params_.memory_budget_bytes;
    if (budget == 0) budget = device::usable_memory_bytes(device::read_memory_info("/"), device::read_cgroup_limits("/"));
    if (budget == 0) return;  // unknown (no /proc/meminfo): nothing to check against
    const uint64_t weights = model_->file().file_size();
    const uint64_t kv = kv_->size_bytes();
    if (weights + kv <= budget) return;
    throw usage_error(fmt::format(
        "not enough memory: the model needs {} for its weights plus {} for a KV cache of {} tokens, but only {} "
        "is available; use a smaller model or quantization, or a smaller context (-c)",
        format_bytes(weights), format_bytes(kv), params_.n_ctx, format_bytes(budget)));
}

void engine::set_n_threads(int n) {
    if (n <= 0) throw usage_error(fmt::format("thread count must be positive, got {}", n));
    params_.n_threads = n;
    forward_->set_n_threads(n);
}

void engine::check_prompt(std::span<const int32_t> prompt) const {
    if (prompt.empty()) throw usage_error("the prompt is empty (start from the BOS token instead)");
    if (static_cast<int64_t>(prompt.size()) >= params_.n_ctx)
        throw usage_error(fmt::format("the prompt has {} tokens but the context holds only {} (raise -c)", prompt.size(),
                                      params_.n_ctx));
    const int64_t n_vocab = model_->hparams().n_vocab;
    for (size_t i = 0; i < prompt.size(); ++i)
        if (prompt[i] < 0 || prompt[i] >= n_vocab)
            throw usage_error(fmt::format("prompt token {} (index {}) is outside the vocabulary of {} tokens", prompt[i],
                                          i, n_vocab));
}

generation_stats engine::generate(std::span<const int32_t> prompt, const generation_params& gp,
                                  const token_callback& on_token) {
    if (gp.n_predict <= 0)
        throw usage_error(fmt::format("the number of tokens to generate must be positive, got {}", gp.n_predict));
    check_prompt(prompt);
    sampling::sampler_chain chain = sampling::sampler_chain::from_params(gp.sampling);
    const model::model_hparams& hp = model_->hparams();
    const size_t n_vocab = static_cast<size_t>(hp.n_vocab);

    generation_stats st;
    st.load_ms = load_ms_;
    st.kv_bytes = kv_->size_bytes();
    st.model_bytes = model_->file().file_size();
    stopwatch total;

    kv_->clear(0);
    for (int32_t t : prompt) chain.accept(t);
    model::batch b;
    for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int64_t>(i), 0, i + 1 == prompt.size());
    stopwatch sw;
    std::span<const float> logits = forward_->eval(*kv_, b);
    st.prefill_ms = sw.elapsed_ms();
    st.n_prompt = static_cast<int64_t>(prompt.size());

    std::vector<float> last(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n_vocab));
    for (;;) {
        sw.reset();
        const int32_t tok = chain.sample(last);
        st.sample_ms += sw.elapsed_ms();
        if (st.n_gen == 0) st.ttft_ms = total.elapsed_ms();
        const bool eog = hp.is_end_of_generation(tok) ||
                         std::find(gp.extra_eog_ids.begin(), gp.extra_eog_ids.end(), tok) != gp.extra_eog_ids.end();
        if (!gp.ignore_eos && eog) {
            st.stop_reason = "eos";
            break;
        }
        chain.accept(tok);
        ++st.n_gen;
        if (on_token && !on_token(tok)) {
            st.stop_reason = "cancelled";
            break;
        }
        if (st.n_gen >= gp.n_predict) {
            st.stop_reason = "length";
            break;
        }
        const int64_t pos = kv_->seq_len(0);
        if (pos >= kv_->n_ctx()) {
            st.stop_reason = "context";
            break;
        }
        b.clear();
        b.add(tok, pos, 0, true);
        sw.reset();
        logits = forward_->eval(*kv_, b);
        st.decode_ms += sw.elapsed_ms();
        ++st.n_decode;
        std::copy(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n_vocab), last.begin());
    }
    if (st.prefill_ms > 0) st.prefill_tokens_per_s = 1000.0 * static_cast<double>(st.n_prompt) / st.prefill_ms;
    if (st.decode_ms > 0) st.decode_tokens_per_s = 1000.0 * static_cast<double>(st.n_decode) / st.decode_ms;
    st.peak_rss_bytes = peak_rss_bytes();
    return st;
}

std::vector<float> engine::all_logits(std::span<const int32_t> tokens) {
    check_prompt(tokens);
    kv_->clear(0);
    model::batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int64_t>(i), 0, true);
    std::span<const float> logits = forward_->eval(*kv_, b);
    return {logits.begin(), logits.end()};
}

}  // namespace edgellm::engine
