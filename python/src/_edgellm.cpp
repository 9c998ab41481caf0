// edgellm._edgellm: the Python binding of the C API (include/edgellm/edgellm.h). Thin on purpose:
// the Pythonic surface (edgellm.Llama, Model, Session) is written in Python on top of it.
// Generation and loading release the GIL; token callbacks take it back for each token.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edgellm/edgellm.h"

namespace py = pybind11;

namespace {

// A failed C call: its status name and edgellm_last_error() text.
struct capi_error {
    edgellm_status status;
    std::string message;
};

void check(edgellm_status s) {
    if (s != EDGELLM_OK) throw capi_error{s, edgellm_last_error()};
}

// Calls f(buf, cap, &n) with a growing buffer until it fits.
template <class F>
std::string read_text(F&& f, size_t first = 256) {
    std::string buf(first, '\0');
    size_t n = 0;
    edgellm_status s = f(buf.data(), buf.size(), &n);
    if (s == EDGELLM_ERR_BUFFER_TOO_SMALL) {
        buf.assign(n + 1, '\0');
        s = f(buf.data(), buf.size(), &n);
    }
    check(s);
    buf.resize(n);
    return buf;
}

template <class F>
std::vector<edgellm_token> read_tokens(F&& f, size_t first) {
    std::vector<edgellm_token> ids(first + 8);
    size_t n = 0;
    edgellm_status s = f(ids.data(), ids.size(), &n);
    if (s == EDGELLM_ERR_BUFFER_TOO_SMALL) {
        ids.resize(n);
        s = f(ids.data(), ids.size(), &n);
    }
    check(s);
    ids.resize(n);
    return ids;
}

const char* kv_name(edgellm_kv_type t) {
    switch (t) {
        case EDGELLM_KV_F32: return "f32";
        case EDGELLM_KV_Q8_0: return "q8_0";
        case EDGELLM_KV_Q4_0: return "q4_0";
        default: return "f16";
    }
}

edgellm_kv_type kv_from_name(const std::string& s) {
    if (s == "f16") return EDGELLM_KV_F16;
    if (s == "f32") return EDGELLM_KV_F32;
    if (s == "q8_0") return EDGELLM_KV_Q8_0;
    if (s == "q4_0") return EDGELLM_KV_Q4_0;
    throw capi_error{EDGELLM_ERR_INVALID_ARGUMENT, "kv_type must be f16, f32, q8_0 or q4_0, got '" + s + "'"};
}

struct chat_messages {
    std::vector<std::string> strings;  // role, content, role, content ...
    std::vector<edgellm_chat_message> c;
    explicit chat_messages(const std::vector<std::pair<std::string, std::string>>& msgs) {
        strings.reserve(msgs.size() * 2);
        for (const auto& [role, content] : msgs) {
            strings.push_back(role);
            strings.push_back(content);
        }
        for (size_t i = 0; i < msgs.size(); ++i) c.push_back({strings[2 * i].c_str(), strings[2 * i + 1].c_str()});
    }
};

class Model {
public:
    Model(const std::string& path, int n_threads, bool repack, py::object progress) {
        edgellm_model_params p = edgellm_model_default_params();
        p.n_threads = n_threads;
        p.repack = repack;
        struct state {
            py::object fn;
            std::optional<py::error_already_set> err;
        } st{std::move(progress), std::nullopt};
        if (!st.fn.is_none()) {
            p.progress_user_data = &st;
            p.progress_callback = [](float f, void* ud) -> bool {
                auto* s = static_cast<state*>(ud);
                py::gil_scoped_acquire gil;
                try {
                    py::object r = s->fn(f);
                    return r.is_none() || r.cast<bool>();
                } catch (py::error_already_set& e) {
                    s->err = std::move(e);
                    return false;
                }
            };
        }
        edgellm_status s;
        {
            py::gil_scoped_release nogil;
            s = edgellm_model_load(path.c_str(), &p, &m_);
        }
        if (st.err) throw std::move(*st.err);
        check(s);
    }
    ~Model() { edgellm_model_free(m_); }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;
    const edgellm_model* get() const { return m_; }

    py::dict info() const {
        edgellm_model_info i{};
        check(edgellm_model_get_info(m_, &i));
        py::dict d;
        d["arch"] = i.arch;
        d["name"] = i.name;
        d["type_mix"] = i.type_mix;
        d["file_type"] = i.file_type;
        d["n_ctx_train"] = i.n_ctx_train;
        d["n_vocab"] = i.n_vocab;
        d["n_embd"] = i.n_embd;
        d["n_layer"] = i.n_layer;
        d["n_head"] = i.n_head;
        d["n_head_kv"] = i.n_head_kv;
        d["file_bytes"] = i.file_bytes;
        d["weight_bytes"] = i.weight_bytes;
        d["bos"] = i.bos;
        d["eos"] = i.eos;
        d["has_tokenizer"] = i.has_tokenizer;
        d["is_encoder"] = i.is_encoder;
        return d;
    }

    std::vector<edgellm_token> tokenize(const py::bytes& text, bool add_bos, bool special) const {
        const std::string t = text;
        return read_tokens([&](edgellm_token* out, size_t cap, size_t* n) {
            return edgellm_tokenize(m_, t.data(), t.size(), add_bos, special, out, cap, n);
        }, t.size());
    }
    py::bytes detokenize(const std::vector<edgellm_token>& ids, bool special) const {
        return py::bytes(read_text([&](char* b, size_t cap, size_t* n) {
            return edgellm_detokenize(m_, ids.data(), ids.size(), special, b, cap, n);
        }, ids.size() * 8 + 16));
    }
    py::bytes token_to_piece(edgellm_token t, bool special) const {
        return py::bytes(read_text([&](char* b, size_t cap, size_t* n) {
            return edgellm_token_to_piece(m_, t, special, b, cap, n);
        }, 64));
    }
    bool is_eog(edgellm_token t) const { return edgellm_token_is_eog(m_, t); }

    // One vector per text (the C API's edgellm_embed), the GIL released while it runs.
    std::vector<std::vector<float>> embed(const std::vector<std::string>& texts, int pooling, bool normalize,
                                          bool truncate, int n_threads) const {
        edgellm_embed_params p = edgellm_embed_default_params();
        p.pooling = pooling;
        p.normalize = normalize;
        p.truncate = truncate;
        p.n_threads = n_threads;
        std::vector<const char*> ptrs;
        for (const auto& t : texts) ptrs.push_back(t.c_str());
        int64_t n_embd = 0;
        std::vector<float> flat;
        edgellm_status s;
        {
            py::gil_scoped_release nogil;
            s = edgellm_embed(m_, ptrs.data(), ptrs.size(), &p, nullptr, 0, &n_embd);
            if (s == EDGELLM_ERR_BUFFER_TOO_SMALL) {
                flat.resize(texts.size() * static_cast<size_t>(n_embd));
                s = edgellm_embed(m_, ptrs.data(), ptrs.size(), &p, flat.data(), flat.size(), &n_embd);
            }
        }
        check(s);
        std::vector<std::vector<float>> out(texts.size());
        for (size_t i = 0; i < texts.size(); ++i)
            out[i].assign(flat.begin() + static_cast<std::ptrdiff_t>(i * n_embd),
                          flat.begin() + static_cast<std::ptrdiff_t>((i + 1) * n_embd));
        return out;
    }

    std::string chat_apply(const std::vector<std::pair<std::string, std::string>>& msgs,
                           std::optional<std::string> tmpl, bool add_generation_prompt) const {
        chat_messages cm(msgs);
        return read_text([&](char* b, size_t cap, size_t* n) {
            return edgellm_chat_apply_template(m_, tmpl ? tmpl->c_str() : nullptr, cm.c.data(), cm.c.size(),
                                               add_generation_prompt, b, cap, n);
        }, 1024);
    }
    std::vector<edgellm_token> chat_tokenize(const std::vector<std::pair<std::string, std::string>>& msgs,
                                             std::optional<std::string> tmpl) const {
        chat_messages cm(msgs);
        return read_tokens([&](edgellm_token* out, size_t cap, size_t* n) {
            return edgellm_chat_tokenize(m_, tmpl ? tmpl->c_str() : nullptr, cm.c.data(), cm.c.size(), out, cap, n);
        }, 256);
    }
    std::pair<std::string, std::string> chat_template() const {
        std::string name(64, '\0');
        std::string src = read_text([&](char* b, size_t cap, size_t* n) {
            return edgellm_model_chat_template(m_, name.data(), name.size(), b, cap, n);
        }, 4096);
        name.resize(std::strlen(name.c_str()));
        return {name, src};
    }

private:
    edgellm_model* m_ = nullptr;
};

class Context {
public:
    Context(std::shared_ptr<Model> model, int64_t n_ctx, int64_t n_batch, int n_threads, int n_threads_batch,
            const std::string& kv_type, const std::string& flash_attn, int n_gpu_layers, uint64_t memory_budget,
            bool fallback)
        : model_(std::move(model)) {
        edgellm_context_params p = edgellm_context_default_params();
        p.n_ctx = n_ctx;
        p.n_batch = n_batch;
        p.n_threads = n_threads;
        p.n_threads_batch = n_threads_batch;
        p.kv_type = kv_from_name(kv_type);
        if (flash_attn == "auto") p.flash_attn = EDGELLM_FLASH_ATTN_AUTO;
        else if (flash_attn == "on") p.flash_attn = EDGELLM_FLASH_ATTN_ON;
        else if (flash_attn == "off") p.flash_attn = EDGELLM_FLASH_ATTN_OFF;
        else throw capi_error{EDGELLM_ERR_INVALID_ARGUMENT, "flash_attn must be auto, on or off, got '" + flash_attn + "'"};
        p.n_gpu_layers = n_gpu_layers;
        p.memory_budget_bytes = memory_budget;
        p.fallback = fallback;
        edgellm_status s;
        {
            py::gil_scoped_release nogil;
            s = edgellm_context_create(model_->get(), &p, &c_);
        }
        check(s);
    }
    ~Context() { edgellm_context_free(c_); }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    py::dict info() const {
        edgellm_context_info i{};
        check(edgellm_context_get_info(c_, &i));
        py::dict d;
        d["n_ctx"] = i.n_ctx;
        d["n_batch"] = i.n_batch;
        d["n_threads"] = i.n_threads;
        d["kv_type"] = kv_name(i.kv_type);
        d["n_gpu_layers"] = i.n_gpu_layers;
        d["kv_bytes"] = i.kv_bytes;
        d["gpu"] = i.gpu;
        d["fallback_note"] = i.fallback_note;
        return d;
    }

    // Generates after `prompt`; callback(token: int, piece: bytes) -> bool|None per token (token -1:
    // the held-back tail at the end). Returns the result as a dict.
    py::dict generate(const std::vector<edgellm_token>& prompt, int n_predict, float temperature, int top_k, float top_p,
                      float min_p, float repeat_penalty, float frequency_penalty, float presence_penalty,
                      int penalty_last_n, std::optional<uint64_t> seed, std::optional<std::string> grammar,
                      std::optional<std::string> json_schema, const std::vector<std::string>& stop, bool ignore_eos,
                      bool keep_kv, py::object callback) {
        edgellm_generate_params g = edgellm_generate_default_params();
        g.n_predict = n_predict;
        g.sampling.temperature = temperature;
        g.sampling.top_k = top_k;
        g.sampling.top_p = top_p;
        g.sampling.min_p = min_p;
        g.sampling.repeat_penalty = repeat_penalty;
        g.sampling.frequency_penalty = frequency_penalty;
        g.sampling.presence_penalty = presence_penalty;
        g.sampling.penalty_last_n = penalty_last_n;
        g.sampling.seed = seed ? *seed : EDGELLM_SEED_RANDOM;
        g.sampling.grammar = grammar ? grammar->c_str() : nullptr;
        g.sampling.json_schema = json_schema ? json_schema->c_str() : nullptr;
        std::vector<const char*> stops;
        for (const auto& s : stop) stops.push_back(s.c_str());
        g.stop = stops.data();
        g.n_stop = stops.size();
        g.ignore_eos = ignore_eos;
        g.keep_kv = keep_kv;
        struct state {
            py::object fn;
            std::optional<py::error_already_set> err;
        } st{std::move(callback), std::nullopt};
        if (!st.fn.is_none()) {
            g.user_data = &st;
            g.on_token = [](edgellm_token tok, const char* piece, size_t len, void* ud) -> bool {
                auto* s = static_cast<state*>(ud);
                py::gil_scoped_acquire gil;
                try {
                    py::object r = s->fn(tok, py::bytes(piece, len));
                    return r.is_none() || r.cast<bool>();
                } catch (py::error_already_set& e) {
                    s->err = std::move(e);
                    return false;
                }
            };
        }
        edgellm_generate_result r{};
        edgellm_status s;
        {
            py::gil_scoped_release nogil;
            s = edgellm_generate(c_, prompt.data(), prompt.size(), &g, &r);
        }
        if (st.err) throw std::move(*st.err);
        check(s);
        static const char* reasons[] = {"eos", "length", "context", "stop", "cancelled"};
        py::dict d;
        d["n_prompt"] = r.n_prompt;
        d["n_cached"] = r.n_cached;
        d["n_gen"] = r.n_gen;
        d["stop_reason"] = reasons[r.stop_reason];
        d["prefill_ms"] = r.prefill_ms;
        d["decode_ms"] = r.decode_ms;
        d["sample_ms"] = r.sample_ms;
        d["ttft_ms"] = r.ttft_ms;
        d["prefill_tokens_per_s"] = r.prefill_tokens_per_s;
        d["decode_tokens_per_s"] = r.decode_tokens_per_s;
        return d;
    }

    void eval(const std::vector<edgellm_token>& tokens, bool all_logits) {
        edgellm_status s;
        {
            py::gil_scoped_release nogil;
            s = edgellm_eval(c_, tokens.data(), tokens.size(), all_logits);
        }
        check(s);
    }
    std::vector<float> logits(int i) {
        const float* l = edgellm_get_logits(c_, i);
        if (!l) throw capi_error{EDGELLM_ERR_INVALID_ARGUMENT, "no logits for output " + std::to_string(i)};
        const auto n = static_cast<size_t>(model_->info()["n_vocab"].cast<int64_t>());
        return {l, l + n};
    }
    int64_t kv_len() const { return edgellm_kv_len(c_); }
    void kv_truncate(int64_t n) { check(edgellm_kv_truncate(c_, n)); }

private:
    std::shared_ptr<Model> model_;  // the context keeps its model alive
    edgellm_context* c_ = nullptr;
};

}  // namespace

PYBIND11_MODULE(_edgellm, m) {
    m.doc() = "edgellm C API binding (use the edgellm package: Llama, Model, Session)";
    static py::exception<std::runtime_error> error_type(m, "Error");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const capi_error& e) {
            py::object err = py::reinterpret_borrow<py::object>(error_type.ptr())(e.message);
            err.attr("status") = edgellm_status_name(e.status);
            PyErr_SetObject(error_type.ptr(), err.ptr());
        }
    });
    m.attr("API_VERSION") = EDGELLM_API_VERSION;
    m.def("version", &edgellm_version);
    m.def("api_version", &edgellm_api_version);
    m.def("gpu_offload_unavailable_reason", [] {
        return read_text([](char* b, size_t cap, size_t* n) { return edgellm_gpu_offload_unavailable_reason(b, cap, n); });
    });
    m.def("device_info_json", [](std::optional<std::string> model_path, int64_t n_ctx) {
        py::gil_scoped_release nogil;
        return read_text([&](char* b, size_t cap, size_t* n) {
            return edgellm_device_info_json(model_path ? model_path->c_str() : nullptr, n_ctx, b, cap, n);
        }, 1 << 16);
    }, py::arg("model_path") = py::none(), py::arg("n_ctx") = 0);

    py::class_<Model, std::shared_ptr<Model>>(m, "Model")
        .def(py::init<const std::string&, int, bool, py::object>(), py::arg("path"), py::arg("n_threads") = 0,
             py::arg("repack") = true, py::arg("progress") = py::none())
        .def("info", &Model::info)
        .def("tokenize", &Model::tokenize, py::arg("text"), py::arg("add_bos") = true, py::arg("special") = false)
        .def("detokenize", &Model::detokenize, py::arg("tokens"), py::arg("special") = false)
        .def("token_to_piece", &Model::token_to_piece, py::arg("token"), py::arg("special") = false)
        .def("is_eog", &Model::is_eog)
        .def("embed", &Model::embed, py::arg("texts"), py::arg("pooling") = -1, py::arg("normalize") = true,
             py::arg("truncate") = true, py::arg("n_threads") = 0)
        .def("chat_apply", &Model::chat_apply, py::arg("messages"), py::arg("template") = py::none(),
             py::arg("add_generation_prompt") = true)
        .def("chat_tokenize", &Model::chat_tokenize, py::arg("messages"), py::arg("template") = py::none())
        .def("chat_template", &Model::chat_template);

    py::class_<Context>(m, "Context")
        .def(py::init<std::shared_ptr<Model>, int64_t, int64_t, int, int, const std::string&, const std::string&, int,
                      uint64_t, bool>(),
             py::arg("model"), py::arg("n_ctx") = 0, py::arg("n_batch") = 512, py::arg("n_threads") = 0,
             py::arg("n_threads_batch") = 0, py::arg("kv_type") = "f16", py::arg("flash_attn") = "auto",
             py::arg("n_gpu_layers") = 0, py::arg("memory_budget") = 0, py::arg("fallback") = false)
        .def("info", &Context::info)
        .def("generate", &Context::generate, py::arg("prompt"), py::arg("n_predict") = 128,
             py::arg("temperature") = 0.8f, py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.05f,
             py::arg("repeat_penalty") = 1.0f, py::arg("frequency_penalty") = 0.0f,
             py::arg("presence_penalty") = 0.0f, py::arg("penalty_last_n") = 64, py::arg("seed") = py::none(),
             py::arg("grammar") = py::none(), py::arg("json_schema") = py::none(),
             py::arg("stop") = std::vector<std::string>{}, py::arg("ignore_eos") = false, py::arg("keep_kv") = false,
             py::arg("callback") = py::none())
        .def("eval", &Context::eval, py::arg("tokens"), py::arg("all_logits") = false)
        .def("logits", &Context::logits, py::arg("i") = -1)
        .def("kv_len", &Context::kv_len)
        .def("kv_truncate", &Context::kv_truncate);
}
