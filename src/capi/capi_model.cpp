// C API: library info, errors, models, tokenizer, chat templates, device info.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>

#include "capi_internal.h"
#include "core/error.h"
#include "device/device.h"
#include "device/memory_plan.h"
#include "device/profiles.h"
#include "engine/text.h"
#include "gguf/gguf_summary.h"
#include "model/gpu_layers.h"

namespace edgellm::capi {
namespace {
thread_local std::string g_last_error;

class load_cancelled : public error {
public:
    load_cancelled() : error("model load cancelled by the progress callback") {}
};
}  // namespace

edgellm_status fail(edgellm_status s, std::string message) {
    g_last_error = std::move(message);
    return s;
}

edgellm_status from_current_exception(edgellm_status error_status) noexcept {
    try {
        try {
            throw;
        } catch (const load_cancelled& e) {
            return fail(EDGELLM_ERR_CANCELLED, e.what());
        } catch (const usage_error& e) {
            return fail(EDGELLM_ERR_USAGE, e.what());
        } catch (const error& e) {
            return fail(error_status, e.what());
        } catch (const std::bad_alloc&) {
            return fail(EDGELLM_ERR_USAGE, "out of memory");
        } catch (const std::exception& e) {
            return fail(EDGELLM_ERR_INTERNAL, std::string("internal error: ") + e.what());
        } catch (...) {
            return fail(EDGELLM_ERR_INTERNAL, "internal error: unknown exception");
        }
    } catch (...) {  // building the message failed (out of memory)
        return EDGELLM_ERR_INTERNAL;
    }
}

edgellm_status write_text(std::string_view text, char* buf, size_t cap, size_t* n_out) {
    if (!n_out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "n_out is NULL");
    if (!buf && cap > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "buf is NULL but cap is not 0");
    *n_out = text.size();
    if (cap <= text.size()) {
        if (cap > 0) {  // as much as fits, still NUL-terminated
            std::memcpy(buf, text.data(), cap - 1);
            buf[cap - 1] = '\0';
        }
        return fail(EDGELLM_ERR_BUFFER_TOO_SMALL,
                    fmt::format("buffer too small: {} bytes plus the NUL are needed, {} given", text.size(), cap));
    }
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    return EDGELLM_OK;
}

edgellm_status write_tokens(const std::vector<int32_t>& ids, edgellm_token* out, size_t cap, size_t* n_out) {
    if (!n_out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "n_out is NULL");
    if (!out && cap > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "tokens is NULL but cap is not 0");
    *n_out = ids.size();
    if (cap < ids.size())
        return fail(EDGELLM_ERR_BUFFER_TOO_SMALL,
                    fmt::format("buffer too small: {} tokens needed, room for {}", ids.size(), cap));
    std::copy(ids.begin(), ids.end(), out);
    return EDGELLM_OK;
}

namespace {
const tokenizer& need_tokenizer(const edgellm_model* m) {
    const tokenizer* t = m->lm->get_tokenizer();
    if (!t) throw usage_error("the model has no usable tokenizer: " + m->lm->tokenizer_error());
    return *t;
}

std::vector<chat::chat_message> to_messages(const edgellm_chat_message* messages, size_t n) {
    if (!messages && n > 0) throw usage_error("messages is NULL");
    std::vector<chat::chat_message> out;
    for (size_t i = 0; i < n; ++i) {
        if (!messages[i].role || !messages[i].content)
            throw usage_error(fmt::format("message {} has a NULL role or content", i));
        out.push_back({messages[i].role, messages[i].content});
    }
    return out;
}

std::optional<std::string> opt(const char* s) { return s ? std::optional<std::string>(s) : std::nullopt; }
}  // namespace

}  // namespace edgellm::capi

using namespace edgellm;
using capi::fail;
using capi::guard;

extern "C" {

const char* edgellm_version(void) { return EDGELLM_VERSION; }
int edgellm_api_version(void) { return EDGELLM_API_VERSION; }
const char* edgellm_last_error(void) { return capi::g_last_error.c_str(); }

const char* edgellm_status_name(edgellm_status status) {
    int s = 0;  // any int a C caller passed (an out-of-range value must not be loaded as the enum)
    static_assert(sizeof s == sizeof status);
    std::memcpy(&s, &status, sizeof s);
    switch (s) {
        case EDGELLM_OK: return "EDGELLM_OK";
        case EDGELLM_ERR_INVALID_ARGUMENT: return "EDGELLM_ERR_INVALID_ARGUMENT";
        case EDGELLM_ERR_IO: return "EDGELLM_ERR_IO";
        case EDGELLM_ERR_MODEL: return "EDGELLM_ERR_MODEL";
        case EDGELLM_ERR_USAGE: return "EDGELLM_ERR_USAGE";
        case EDGELLM_ERR_CANCELLED: return "EDGELLM_ERR_CANCELLED";
        case EDGELLM_ERR_BUFFER_TOO_SMALL: return "EDGELLM_ERR_BUFFER_TOO_SMALL";
        case EDGELLM_ERR_INTERNAL: return "EDGELLM_ERR_INTERNAL";
    }
    return "EDGELLM_ERR_UNKNOWN";
}

edgellm_model_params edgellm_model_default_params(void) {
    edgellm_model_params p{};
    p.n_threads = 0;
    p.repack = true;
    return p;
}

edgellm_status edgellm_model_load(const char* path, const edgellm_model_params* params, edgellm_model** out) {
    if (!path) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "path is NULL");
    if (!out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "out is NULL");
    *out = nullptr;
    const edgellm_model_params p = params ? *params : edgellm_model_default_params();
    if (p.n_threads < 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("n_threads must be >= 0, got {}", p.n_threads));
    {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec))
            return fail(EDGELLM_ERR_IO, fmt::format("cannot open model '{}': {}", path,
                                                    std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
        std::ifstream probe(path, std::ios::binary);
        if (!probe) return fail(EDGELLM_ERR_IO, fmt::format("cannot open model '{}': not readable", path));
    }
    auto progress = [&](float f) {
        if (p.progress_callback && !p.progress_callback(f, p.progress_user_data)) throw capi::load_cancelled();
    };
    return guard(
        [&] {
            auto m = std::make_unique<edgellm_model>();
            m->lm = engine::loaded_model::load(path, p.repack, p.n_threads, [&](const model::model&) { progress(0.25f); });
            progress(0.9f);
            const gguf::model_summary s = gguf::summarize(m->lm->get_model().file());
            m->arch = m->lm->hparams().arch;
            m->name = s.name;
            m->type_mix = gguf::format_type_mix(s);
            m->file_type = s.file_type;
            progress(1.0f);
            *out = m.release();
            return EDGELLM_OK;
        },
        EDGELLM_ERR_MODEL);
}

void edgellm_model_free(edgellm_model* model) { delete model; }

edgellm_status edgellm_model_get_info(const edgellm_model* model, edgellm_model_info* out) {
    if (!model || !out) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model or out is NULL");
    const auto& hp = model->lm->hparams();
    edgellm_model_info i{};
    i.arch = model->arch.c_str();
    i.name = model->name.c_str();
    i.type_mix = model->type_mix.c_str();
    i.file_type = model->file_type.c_str();
    i.n_ctx_train = hp.n_ctx_train;
    i.n_vocab = hp.n_vocab;
    i.n_embd = hp.n_embd;
    i.n_layer = hp.n_layer;
    i.n_head = hp.n_head;
    i.n_head_kv = hp.n_head_kv;
    i.file_bytes = model->lm->get_model().file().file_size();
    i.weight_bytes = model->lm->get_model().weights().n_matrix_bytes;
    const tokenizer* t = model->lm->get_tokenizer();
    i.bos = t ? t->bos() : hp.bos_id;
    i.eos = t ? t->eos() : hp.eos_id;
    if (i.bos < 0) i.bos = -1;
    if (i.eos < 0) i.eos = -1;
    i.has_tokenizer = t != nullptr;
    i.is_encoder = model->lm->get_model().is_encoder();
    *out = i;
    return EDGELLM_OK;
}

bool edgellm_token_is_eog(const edgellm_model* model, edgellm_token token) {
    return model && model->lm->is_eog(token);
}

edgellm_status edgellm_tokenize(const edgellm_model* model, const char* text, size_t text_len, bool add_bos,
                                bool parse_special, edgellm_token* tokens, size_t cap, size_t* n_out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    if (!text && text_len > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "text is NULL");
    return guard([&] {
        const auto ids = capi::need_tokenizer(model).encode(std::string_view(text ? text : "", text_len), add_bos, parse_special);
        return capi::write_tokens(ids, tokens, cap, n_out);
    });
}

edgellm_status edgellm_detokenize(const edgellm_model* model, const edgellm_token* tokens, size_t n_tokens,
                                  bool render_special, char* buf, size_t cap, size_t* n_out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    if (!tokens && n_tokens > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "tokens is NULL");
    return guard([&] {
        const tokenizer& t = capi::need_tokenizer(model);
        for (size_t i = 0; i < n_tokens; ++i)
            if (tokens[i] < 0 || tokens[i] >= t.n_vocab())
                return fail(EDGELLM_ERR_INVALID_ARGUMENT,
                            fmt::format("token {} (index {}) is outside the vocabulary of {} tokens", tokens[i], i, t.n_vocab()));
        return capi::write_text(t.decode(std::span<const int32_t>(tokens, n_tokens), render_special), buf, cap, n_out);
    });
}

edgellm_status edgellm_token_to_piece(const edgellm_model* model, edgellm_token token, bool render_special, char* buf,
                                      size_t cap, size_t* n_out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    return guard([&] {
        const tokenizer& t = capi::need_tokenizer(model);
        if (token < 0 || token >= t.n_vocab())
            return fail(EDGELLM_ERR_INVALID_ARGUMENT,
                        fmt::format("token {} is outside the vocabulary of {} tokens", token, t.n_vocab()));
        return capi::write_text(t.token_to_piece(token, render_special), buf, cap, n_out);
    });
}

edgellm_status edgellm_chat_apply_template(const edgellm_model* model, const char* tmpl,
                                           const edgellm_chat_message* messages, size_t n_messages,
                                           bool add_generation_prompt, char* buf, size_t cap, size_t* n_out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    return guard([&] {
        const auto msgs = capi::to_messages(messages, n_messages);
        const chat::chat_template t = engine::model_chat_template(*model->lm, capi::opt(tmpl));
        return capi::write_text(chat::render_chat(t, msgs, add_generation_prompt), buf, cap, n_out);
    });
}

edgellm_status edgellm_chat_tokenize(const edgellm_model* model, const char* tmpl, const edgellm_chat_message* messages,
                                     size_t n_messages, edgellm_token* tokens, size_t cap, size_t* n_out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    return guard([&] {
        const auto msgs = capi::to_messages(messages, n_messages);
        const chat::chat_template t = engine::model_chat_template(*model->lm, capi::opt(tmpl));
        return capi::write_tokens(engine::encode_chat(*model->lm, t, msgs), tokens, cap, n_out);
    });
}

edgellm_status edgellm_model_chat_template(const edgellm_model* model, char* name_buf, size_t name_cap,
                                           char* source_buf, size_t source_cap, size_t* source_len) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    return guard([&] {
        const chat::chat_template t = engine::model_chat_template(*model->lm);
        size_t n_name = 0;
        if (name_buf || name_cap) {
            const edgellm_status s = capi::write_text(t.name(), name_buf, name_cap, &n_name);
            if (s != EDGELLM_OK) return s;
        }
        return capi::write_text(t.source(), source_buf, source_cap, source_len);
    });
}

edgellm_status edgellm_device_info_json(const char* model_path, int64_t n_ctx, char* buf, size_t cap, size_t* n_out) {
    if (n_ctx < 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("n_ctx must be >= 0, got {}", n_ctx));
    return guard(
        [&] {
            using namespace edgellm::device;
            const device_info dev = detect_device();
            std::optional<memory_plan> plan;
            nlohmann::json j;
            j["device"] = to_json(dev);
            if (model_path) {
                const model_memory_facts facts = model_facts_from_gguf(model_path);
                j["model"] = to_json(facts);
                plan_request req;
                req.n_ctx = n_ctx;
                try {
                    plan = plan_memory(facts, budget_from_device(dev, std::nullopt), req);
                    j["plan"] = to_json(*plan);
                } catch (const usage_error& e) {
                    j["error"] = e.what();
                }
            }
            j["capabilities"] = to_json(capabilities(dev));
            j["recommended_settings"] = to_json(recommended_settings(dev, plan ? &*plan : nullptr));
            return capi::write_text(j.dump(), buf, cap, n_out);
        },
        EDGELLM_ERR_MODEL);
}

edgellm_status edgellm_gpu_offload_unavailable_reason(char* buf, size_t cap, size_t* n_out) {
    return guard([&] { return capi::write_text(model::gpu_offload_unavailable_reason(), buf, cap, n_out); });
}

}  // extern "C"
