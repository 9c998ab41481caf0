// C API: embeddings (engine::embedder) for encoder and decoder models.
#include <fmt/format.h>

#include <cstring>

#include "capi_internal.h"
#include "core/error.h"
#include "engine/embed.h"

using namespace edgellm;
using capi::fail;
using capi::guard;

extern "C" {

edgellm_embed_params edgellm_embed_default_params(void) {
    edgellm_embed_params p{};
    p.pooling = EDGELLM_POOLING_MODEL;
    p.normalize = true;
    p.truncate = true;
    p.n_threads = 0;
    return p;
}

edgellm_status edgellm_embed(const edgellm_model* model, const char* const* texts, size_t n_texts,
                             const edgellm_embed_params* params, float* out, size_t cap, int64_t* n_embd_out) {
    if (!model) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "model is NULL");
    if (!texts && n_texts > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "texts is NULL");
    if (n_texts == 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "no texts to embed");
    if (!out && cap > 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, "out is NULL");
    for (size_t i = 0; i < n_texts; ++i)
        if (!texts[i]) return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("texts[{}] is NULL", i));
    const edgellm_embed_params p = params ? *params : edgellm_embed_default_params();
    engine::embed_options o;
    // The pooling arrives as a plain int from C: compare, never load it as the enum type.
    switch (p.pooling) {
        case EDGELLM_POOLING_MODEL: break;
        case EDGELLM_POOLING_MEAN: o.pool = engine::pooling::mean; break;
        case EDGELLM_POOLING_CLS: o.pool = engine::pooling::cls; break;
        case EDGELLM_POOLING_LAST: o.pool = engine::pooling::last; break;
        default: return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("unknown pooling {}", p.pooling));
    }
    if (p.n_threads < 0) return fail(EDGELLM_ERR_INVALID_ARGUMENT, fmt::format("n_threads must be >= 0, got {}", p.n_threads));
    o.normalize = p.normalize;
    o.truncate = p.truncate;
    return guard([&] {
        engine::embedder emb(model->lm, p.n_threads);
        const int64_t n_embd = emb.n_embd();
        if (n_embd_out) *n_embd_out = n_embd;
        const size_t need = n_texts * static_cast<size_t>(n_embd);
        if (cap < need)
            return fail(EDGELLM_ERR_BUFFER_TOO_SMALL,
                        fmt::format("{} texts of {} floats need {} floats, the buffer holds {}", n_texts, n_embd, need, cap));
        std::vector<std::string> in(texts, texts + n_texts);
        const engine::embed_result r = emb.embed(in, o);
        if (r.pool == engine::pooling::none)
            return fail(EDGELLM_ERR_USAGE, "the model's pooling is 'none' (a vector per token); pass a pooling");
        for (size_t i = 0; i < n_texts; ++i)
            std::memcpy(out + i * static_cast<size_t>(n_embd), r.vectors[i].data(), sizeof(float) * static_cast<size_t>(n_embd));
        return EDGELLM_OK;
    });
}

}  // extern "C"
