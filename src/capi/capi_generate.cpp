// C API: contexts (engine sessions), generation with a token callback and stop strings, the
// lower-level eval / logits / sampler calls.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <type_traits>

#include "capi_internal.h"
#include "core/error.h"
#include "engine/text.h"
#include "sampling/grammar.h"
#include "sampling/json_schema.h"

namespace edgellm::capi {

sampling::sampling_params to_sampling(const edgellm_sampling_params& c) {
    sampling::sampling_params p;
    p.temperature = c.temperature;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    p.repeat_penalty = c.repeat_penalty;
    p.frequency_penalty = c.frequency_penalty;
    p.presence_penalty = c.presence_penalty;
    p.penalty_last_n = c.penalty_last_n;
    p.seed = c.seed == EDGELLM_SEED_RANDOM ? sampling::random_seed() : c.seed;
    if (c.grammar && c.json_schema) throw usage_error("give either a grammar or a JSON schema, not both");
    if (c.grammar) p.grammar = sampling::parse_grammar(c.grammar);
    if (c.json_schema) {
        nlohmann::ordered_json schema;
        try {
            schema = nlohmann::ordered_json::parse(c.json_schema);
        } catch (const nlohmann::json::exception& e) {
            throw usage_error(std::string("json_schema is not valid JSON: ") + e.what());
        }
        p.grammar = sampling::json_schema_to_grammar(schema);
    }
    sampling::validate(p);
    return p;
}

namespace {
// The integer a C caller stored in an enum field: a C program may store any int there, and
// loading a value outside the enumerators' range as the C++ enum type is undefined.
template <class E>
int64_t enum_value(const E& e) {
    std::underlying_type_t<E> v;
    static_assert(sizeof v == sizeof e);
    std::memcpy(&v, &e, sizeof v);
    return static_cast<int64_t>(v);
}

std::optional<ggml_type> kv_type_of(int64_t t) {
    switch (t) {
        case EDGELLM_KV_F16: return ggml_type::f16;
        case EDGELLM_KV_F32: return ggml_type::f32;
        case EDGELLM_KV_Q8_0: return ggml_type::q8_0;
        case EDGELLM_KV_Q4_0: return ggml_type::q4_0;
    }
    return std::nullopt;
}

edgellm_kv_type kv_type_to_c(ggml_type t) {
    switch (t) {
        case ggml_type::f32: return EDGELLM_KV_F32;
        case ggml_type::q8_0: return EDGELLM_KV_Q8_0;
        case ggml_type::q4_0: return EDGELLM_KV_Q4_0;
        default: return EDGELLM_KV_F16;
    }
}

// The C API's name of how a generation ended (engine::generate throws on stop_reason::error).
edgellm_stop_reason c_stop_reason(engine::stop_reason r) {
    switch (r) {
        case engine::stop_reason::length: return EDGELLM_STOP_LENGTH;
        case engine::stop_reason::context: return EDGELLM_STOP_CONTEXT;
        case engine::stop_reason::stop_string: return EDGELLM_STOP_STRING;
        case engine::stop_reason::cancelled: return EDGELLM_STOP_CANCELLED;
        case engine::stop_reason::none:
        case engine::stop_reason::eos:
        case engine::stop_reason::error: return EDGELLM_STOP_EOS;
    }
    return EDGELLM_STOP_EOS;
}
}  // namespace
}  // namespace edgellm::capi

using namespace edgellm;
using capi::fail;
using capi::guard;

extern "C" {

edgellm_context_params edgellm_context_default_params(void) {
    const engine::engine_params d;
    edgellm_context_params p{};
    p.n_ctx = d.n_ctx;
    p.n_batch = d.n_batch;
    p.n_threads = d.n_threads;
    p.n_threads_batch = d.n_threads_batch;
    p.kv_type = EDGELLM_KV_F16;
    p.flash_attn = EDGELLM_FLASH_ATTN_AUTO;
    p.n_gpu_layers = 0;
    p.memory_budget_bytes = 0;
    p.fallback = false;
    return p;
}

edgellm_status edgellm_context_create(const edgellm_model* model, const edgellm_context_params* params,
                                      edgellm_context** out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    if (!out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "out is NULL");
    *out = nullptr;
    const edgellm_context_params c = params ? *params : edgellm_context_default_params();
    const int64_t kv_value = capi::enum_value(c.kv_type), fa = capi::enum_value(c.flash_attn);
    const auto kv = capi::kv_type_of(kv_value);
    if (!kv) return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("unknown kv_type {}", kv_value));
    if (fa < EDGELLM_FLASH_ATTN_AUTO || fa > EDGELLM_FLASH_ATTN_ON)
        return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("unknown flash_attn {}", fa));
    if (c.n_gpu_layers < 0)
        return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("n_gpu_layers must be >= 0, got {}", c.n_gpu_layers));
    return guard([&] {
        engine::engine_params p;
        p.n_ctx = c.n_ctx;
        p.n_batch = c.n_batch;
        p.n_threads = c.n_threads;
        p.n_threads_batch = c.n_threads_batch;
        p.kv_type = *kv;
        p.flash_attn = fa == EDGELLM_FLASH_ATTN_AUTO ? model::flash_attn_mode::automatic
                       : fa == EDGELLM_FLASH_ATTN_ON ? model::flash_attn_mode::on
                                                     : model::flash_attn_mode::off;
        p.n_gpu_layers = c.n_gpu_layers;
        p.memory_budget_bytes = c.memory_budget_bytes;
        p.fallback = c.fallback;
        auto ctx = std::make_unique<edgellm_context>();
        ctx->model = model;
        ctx->eng = std::make_unique<engine::engine>(model->lm, p);
        ctx->gpu = ctx->eng->gpu_description();
        ctx->fallback_note = ctx->eng->params().fallback_note;
        *out = ctx.release();
        return EDGELLM_OK;
    });
}

void edgellm_context_free(edgellm_context* ctx) { delete ctx; }

edgellm_status edgellm_context_get_info(const edgellm_context* ctx, edgellm_context_info* out) {
    if (!ctx || !out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "ctx or out is NULL");
    const engine::engine_params& p = ctx->eng->params();
    edgellm_context_info i{};
    i.n_ctx = p.n_ctx;
    i.n_batch = p.n_batch;
    i.n_threads = p.n_threads;
    i.kv_type = capi::kv_type_to_c(ctx->eng->kv().type());
    i.n_gpu_layers = ctx->gpu.empty() ? 0 : p.n_gpu_layers;
    i.kv_bytes = ctx->eng->kv().size_bytes();
    i.gpu = ctx->gpu.c_str();
    i.fallback_note = ctx->fallback_note.c_str();
    *out = i;
    return EDGELLM_OK;
}

edgellm_sampling_params edgellm_sampling_default_params(void) {
    const sampling::sampling_params d;
    edgellm_sampling_params p{};
    p.temperature = d.temperature;
    p.top_k = d.top_k;
    p.top_p = d.top_p;
    p.min_p = d.min_p;
    p.repeat_penalty = d.repeat_penalty;
    p.frequency_penalty = d.frequency_penalty;
    p.presence_penalty = d.presence_penalty;
    p.penalty_last_n = d.penalty_last_n;
    p.seed = EDGELLM_SEED_RANDOM;
    p.grammar = nullptr;
    p.json_schema = nullptr;
    return p;
}

edgellm_generate_params edgellm_generate_default_params(void) {
    edgellm_generate_params p{};
    p.n_predict = engine::generation_params{}.n_predict;
    p.sampling = edgellm_sampling_default_params();
    return p;
}

edgellm_status edgellm_generate(edgellm_context* ctx, const edgellm_token* prompt, size_t n_prompt,
                                const edgellm_generate_params* params, edgellm_generate_result* result) {
    if (!ctx) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "ctx is NULL");
    if (!prompt && n_prompt > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "prompt is NULL");
    if (!params) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "params is NULL");
    if (params->n_stop > 0 && !params->stop) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "stop is NULL but n_stop is not 0");
    return guard([&] {
        engine::generation_params gp;
        gp.n_predict = params->n_predict;
        gp.ignore_eos = params->ignore_eos;
        gp.sampling = capi::to_sampling(params->sampling);
        std::vector<std::string> stops;
        for (size_t i = 0; i < params->n_stop; ++i) {
            if (!params->stop[i]) throw usage_error(fmt::format("stop string {} is NULL", i));
            if (params->stop[i][0] != '\0') stops.emplace_back(params->stop[i]);
        }
        const std::span<const int32_t> tokens(prompt, n_prompt);
        engine::text_codec codec(ctx->eng->shared_model());
        codec.prime(tokens);
        engine::stop_filter filter(stops);
        bool user_stopped = false;
        auto emit = [&](int32_t tok, const std::string& piece) {
            if (params->on_token && !params->on_token(tok, piece.data(), piece.size(), params->user_data)) user_stopped = true;
        };
        const bool text = codec.has_tokenizer();
        ctx->n_outputs = 0;  // the logits of a previous eval no longer match the KV
        if (ctx->kv_changed) {  // the engine's record of the KV is stale: reuse nothing
            ctx->eng->kv_mut().clear(0);
            ctx->kv_changed = false;
        }
        const engine::generation_stats st = ctx->eng->generate(
            tokens, gp,
            [&](int32_t tok) {
                const std::string piece = text ? filter.push(codec.push(tok)) : std::string();
                emit(tok, piece);
                return !user_stopped && !filter.stopped();
            },
            params->keep_kv);
        if (!user_stopped) {
            std::string tail;
            if (!filter.stopped()) {
                tail = text ? filter.push(codec.flush()) : std::string();
                tail += filter.flush();
            }
            emit(-1, tail);
        }
        if (result) {
            edgellm_generate_result r{};
            r.n_prompt = st.n_prompt;
            r.n_cached = st.n_cached;
            r.n_gen = st.n_gen();
            r.stop_reason = user_stopped && !filter.stopped()
                                ? EDGELLM_STOP_CANCELLED
                                : capi::c_stop_reason(engine::with_stop_string(st.stop, filter.stopped()));
            r.prefill_ms = st.prefill_ms;
            r.decode_ms = st.decode_ms;
            r.sample_ms = st.sample_ms;
            r.ttft_ms = st.ttft_ms();
            r.prefill_tokens_per_s = st.prefill_tokens_per_s();
            r.decode_tokens_per_s = st.decode_tokens_per_s();
            *result = r;
        }
        return EDGELLM_OK;
    });
}

edgellm_status edgellm_eval(edgellm_context* ctx, const edgellm_token* tokens, size_t n_tokens, bool all_logits) {
    if (!ctx) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "ctx is NULL");
    if (!tokens || n_tokens == 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    return guard([&] {
        engine::engine& e = *ctx->eng;
        model::kv_cache& kv = e.kv_mut();
        const int64_t n_vocab = e.hparams().n_vocab;
        const int64_t start = kv.seq_len(0);
        const int64_t n = static_cast<int64_t>(n_tokens);
        if (start + n > kv.n_ctx())
            return fail(EDGELLM_ERR_USAGE, fmt::format("{} positions evaluated plus {} new tokens exceed the context of {}",
                                                       start, n, kv.n_ctx()));
        for (size_t i = 0; i < n_tokens; ++i)
            if (tokens[i] < 0 || tokens[i] >= n_vocab)
                return fail(EDGELLM_ERR_INVALID_ARGUMENT,
                            fmt::format("token {} (index {}) is outside the vocabulary of {} tokens", tokens[i], i, n_vocab));
        if (!kv.reserve(0, start + n)) return fail(EDGELLM_ERR_USAGE, "the KV cache has no room for these tokens");
        ctx->kv_changed = true;
        model::batch b;
        for (int64_t i = 0; i < n; ++i) b.add(tokens[i], start + i, 0, all_logits || i == n - 1);
        ctx->n_outputs = 0;
        const std::span<const float> logits = e.forward().eval(kv, b);
        ctx->logits.assign(logits.begin(), logits.end());
        ctx->n_outputs = static_cast<int64_t>(logits.size()) / n_vocab;
        return EDGELLM_OK;
    });
}

const float* edgellm_get_logits(edgellm_context* ctx, int32_t i) {
    if (!ctx || ctx->n_outputs == 0) return nullptr;
    const int64_t idx = i < 0 ? ctx->n_outputs + i : i;
    if (idx < 0 || idx >= ctx->n_outputs) return nullptr;
    return ctx->logits.data() + idx * ctx->eng->hparams().n_vocab;
}

int64_t edgellm_kv_len(const edgellm_context* ctx) { return ctx ? ctx->eng->kv().seq_len(0) : 0; }

edgellm_status edgellm_kv_truncate(edgellm_context* ctx, int64_t n) {
    if (!ctx) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "ctx is NULL");
    const int64_t len = ctx->eng->kv().seq_len(0);
    if (n < 0 || n > len)
        return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("kv_truncate: {} is outside 0..{}", n, len));
    if (!ctx->eng->kv().can_truncate(0, n))
        return fail(EDGELLM_ERR_INVALID_ARGUMENT,
                    fmt::format("kv_truncate: the model's sliding-window layers no longer hold what {} positions "
                                "need (a window-sized cache rolls back {} positions past its last step at most)",
                                n, model::k_kv_swa_slack));
    return guard([&] {
        ctx->eng->kv_mut().truncate(0, n);
        ctx->n_outputs = 0;
        ctx->kv_changed = true;
        return EDGELLM_OK;
    });
}

edgellm_status edgellm_sampler_create(const edgellm_model* model, const edgellm_sampling_params* params,
                                      edgellm_sampler** out) {
    if (!model || !params || !out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model, params or out is NULL");
    *out = nullptr;
    return guard([&] {
        const sampling::sampling_params p = capi::to_sampling(*params);
        auto s = std::make_unique<edgellm_sampler>();
        s->chain = sampling::sampler_chain::from_params(p, p.grammar ? model->lm->grammar_vocab() : nullptr);
        s->n_vocab = model->lm->hparams().n_vocab;
        *out = s.release();
        return EDGELLM_OK;
    });
}

void edgellm_sampler_free(edgellm_sampler* s) { delete s; }

edgellm_status edgellm_sampler_sample(edgellm_sampler* s, const float* logits, edgellm_token* out) {
    if (!s || !logits || !out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "sampler, logits or out is NULL");
    return guard([&] {
        const int32_t t = s->chain.sample(std::span<const float>(logits, static_cast<size_t>(s->n_vocab)));
        s->chain.accept_generated(t);
        *out = t;
        return EDGELLM_OK;
    });
}

}  // extern "C"
