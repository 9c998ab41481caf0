// Shared pieces of the C API implementation (include/edgellm/edgellm.h): the handle structs and
// the one place where C++ exceptions become status codes plus edgellm_last_error() text.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edgellm/edgellm.h"
#include "engine/engine.h"
#include "sampling/sampler.h"

struct edgellm_model {
    std::shared_ptr<const edgellm::engine::loaded_model> lm;
    std::string arch, name, type_mix, file_type;  // backing strings of edgellm_model_info
};

struct edgellm_context {
    const edgellm_model* model = nullptr;
    std::unique_ptr<edgellm::engine::engine> eng;
    std::string gpu, fallback_note;  // backing strings of edgellm_context_info
    std::vector<float> logits;       // outputs of the last edgellm_eval
    int64_t n_outputs = 0;
    // edgellm_eval / edgellm_kv_truncate changed the KV behind the engine's back: the next
    // keep_kv generation must not trust what the engine remembers of it.
    bool kv_changed = false;
};

struct edgellm_sampler {
    edgellm::sampling::sampler_chain chain{0};
    int64_t n_vocab = 0;
};

namespace edgellm::capi {

// Records `message` as this thread's last error and returns `s`.
edgellm_status fail(edgellm_status s, std::string message);
// Runs f() (returning edgellm_status), turning every exception into a status and message:
// usage_error -> USAGE (or `usage_status`), format_error/error -> `error_status`, bad_alloc ->
// USAGE (out of memory), anything else -> INTERNAL.
template <class F>
edgellm_status guard(F&& f, edgellm_status error_status = EDGELLM_ERR_USAGE) noexcept;
edgellm_status from_current_exception(edgellm_status error_status) noexcept;

template <class F>
edgellm_status guard(F&& f, edgellm_status error_status) noexcept {
    try {
        return f();
    } catch (...) {
        return from_current_exception(error_status);
    }
}

// Copies `text` to a caller buffer as the header describes (NUL added when it fits).
edgellm_status write_text(std::string_view text, char* buf, size_t cap, size_t* n_out);
// Copies ids to a caller array.
edgellm_status write_tokens(const std::vector<int32_t>& ids, edgellm_token* out, size_t cap, size_t* n_out);

// The sampling parameters of the engine for the C struct (grammar parsed; seed resolved).
sampling::sampling_params to_sampling(const edgellm_sampling_params& p);

}  // namespace edgellm::capi
