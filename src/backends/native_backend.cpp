// The native backend: edgellm's own engine behind the Backend interface, so the CLI, the
// benchmark and the server drive it exactly like llama.cpp or Ollama.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "backends/factories.h"
#include "core/error.h"
#include "core/units.h"
#include "core/timing.h"
#include "engine/embed.h"
#include "engine/engine.h"
#include "engine/speculative.h"
#include "engine/text.h"
#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/gpu_layers.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"

namespace edgellm::backends {
namespace {

class native_backend final : public backend {
public:
    std::string name() const override { return "native"; }
    std::string description() const override { return "edgellm's built-in engine"; }

    availability check_available(const backend_settings& s) const override {
        if (s.n_gpu_layers > 0)
            if (const std::string why = model::gpu_offload_unavailable_reason(); !why.empty())
                return {false, fmt::format("-ngl {}: {}", s.n_gpu_layers, why), ""};
        std::string archs;
        for (const auto* a : model::supported_archs()) archs += (archs.empty() ? "" : " / ") + std::string(a->name);
        return {true, "built in (CPU kernels: GGUF " + archs + ")", ""};
    }

    void load(const backend_settings& s) override {
        if (s.model.empty()) throw usage_error("native: no model given (use -m / --model-path MODEL.gguf)");
        if (auto e = s.extra.find("embedding"); e != s.extra.end() && e->second == "1") {
            // Embeddings: the model and an embedder over it (as `edgellm embed`), no generation engine.
            const double t0 = now_ms();
            const int nt = s.n_threads > 0 ? s.n_threads
                                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            embedder_ = std::make_unique<engine::embedder>(engine::loaded_model::load(s.model, /*repack=*/true, nt),
                                                           nt, s.n_ctx, s.n_batch > 0 ? s.n_batch : 2048);
            load_ms_ = now_ms() - t0;
            return;
        }
        engine::engine_params p;
        p.model_path = s.model;
        if (s.n_ctx > 0) p.n_ctx = s.n_ctx;
        if (s.n_batch > 0) p.n_batch = s.n_batch;
        if (s.n_threads > 0) p.n_threads = s.n_threads;
        p.n_gpu_layers = std::max(s.n_gpu_layers, 0);
        // As `run`: a request that does not fit walks the fallback chain (the rung is load_note()).
        p.fallback = s.extra.find("no_fallback") == s.extra.end();
        p.deterministic = s.extra.find("deterministic") != s.extra.end();  // bench --deterministic
        if (auto m = s.extra.find("memory_limit"); m != s.extra.end())
            p.memory_budget_bytes = parse_size(m->second, "--memory-limit");
        auto kv = s.extra.find("kv_type");
        if (kv != s.extra.end()) {
            auto t = type_from_name(kv->second);
            if (!t || !model::kv_type_supported(*t))
                throw usage_error("native: KV cache type must be f16, f32, q8_0 or q4_0, got '" + kv->second + "'");
            p.kv_type = *t;
        }
        engine_ = std::make_unique<engine::engine>(p);
        if (auto d = s.extra.find("model_draft"); d != s.extra.end() && !d->second.empty()) {
            draft_ = engine::open_draft(p, d->second, engine_->params().n_ctx);
            if (auto m = s.extra.find("draft_max"); m != s.extra.end()) spec_.draft_max = std::stoi(m->second);
            engine::use_draft_model(*engine_, *draft_, spec_);
        }
        tokenizer_ = engine_->shared_model()->get_tokenizer();
        if (!tokenizer_)
            throw usage_error("native: " + s.model + " has no usable tokenizer: " +
                              engine_->shared_model()->tokenizer_error());
        load_ms_ = engine_->load_ms();
    }

    std::string load_note() const override { return engine_ ? engine_->params().fallback_note : std::string(); }

    embed_stats embed(const std::vector<std::string>& texts) override {
        if (!embedder_) throw error("native: embed called without a load for embeddings");
        const engine::embed_result r = embedder_->embed(texts, engine::embed_options{});
        embed_stats st;
        st.n_inputs = static_cast<int64_t>(r.vectors.size());
        for (int64_t n : r.n_tokens) st.n_tokens += n;
        st.n_embd = r.n_embd;
        st.ms = r.ms;
        return st;
    }

    void unload() override {
        embedder_.reset();
        tokenizer_ = nullptr;
        chat_template_.reset();
        draft_.reset();
        engine_.reset();
    }

    engine::engine* get_engine() { return engine_.get(); }

protected:
    void do_generate(const generation_request& req, const std::function<bool(std::string_view)>& emit,
                     generation_result& result) override {
        if (!engine_) throw error("native: generate called before load");
        std::vector<int32_t> prompt;
        if (req.chat()) {
            // The model's own template, else the built-in fallback `edgellm chat` and serve use.
            if (!chat_template_) chat_template_.emplace(engine::model_chat_template(*engine_->shared_model()));
            std::vector<chat::chat_message> messages;
            for (const auto& m : req.messages) messages.push_back({m.role, m.content});
            prompt = engine::encode_chat(*engine_->shared_model(), *chat_template_, messages);
        } else {
            prompt = tokenizer_->encode(req.prompt, /*add_bos=*/true, /*parse_special=*/true);
        }
        if (prompt.empty()) prompt.push_back(tokenizer_->bos());
        engine::generation_params gp;
        gp.n_predict = req.n_predict;
        gp.sampling.temperature = req.temperature;
        gp.sampling.top_k = req.top_k;
        gp.sampling.top_p = req.top_p;
        gp.sampling.min_p = req.min_p;
        gp.sampling.repeat_penalty = req.repeat_penalty;
        gp.sampling.seed = req.seed ? *req.seed : sampling::random_seed();
        engine::text_codec codec(engine_->shared_model());
        codec.prime(prompt);  // a continuation keeps its leading space ("Once upon a" -> " time")
        engine::stop_filter stops(req.stop);
        result.prompt_tokens = prompt;
        auto on_token = [&](int32_t tok) {
            result.tokens.push_back(tok);
            const std::string out = stops.push(codec.push(tok));
            if (!out.empty() && !emit(out)) return false;
            return !stops.stopped();
        };
        auto st = engine_->generate(prompt, gp, on_token);
        if (!stops.stopped()) emit(stops.push(codec.flush()) + stops.flush());
        const bool stopped_by_string = stops.stopped();
        auto& s = result.stats;
        s.n_prompt_tokens = st.n_prompt;
        s.n_gen_tokens = st.n_gen();
        s.backend_prompt_ms = st.prefill_ms;
        s.backend_decode_ms = st.decode_ms;
        s.backend_load_ms = engine_->load_ms();
        s.backend_memory_bytes = st.peak_rss_bytes;
        s.prefill_tokens_per_s = st.prefill_tokens_per_s();
        s.decode_tokens_per_s = st.decode_tokens_per_s();
        if (draft_ && st.n_drafted > 0)
            s.draft_acceptance = static_cast<double>(st.n_accepted) / static_cast<double>(st.n_drafted);
        result.finish_reason = engine::openai_finish_reason(engine::with_stop_string(st.stop, stopped_by_string));
    }

private:
    std::unique_ptr<engine::engine> engine_;
    std::unique_ptr<engine::embedder> embedder_;
    std::optional<chat::chat_template> chat_template_;  // for chat requests, chosen at the first one
    std::unique_ptr<engine::engine> draft_;  // speculative decoding (extra "model_draft")
    engine::speculative_params spec_;
    const tokenizer* tokenizer_ = nullptr;  // the engine's model's
};

}  // namespace

std::unique_ptr<backend> make_native_backend() { return std::make_unique<native_backend>(); }

}  // namespace edgellm::backends
