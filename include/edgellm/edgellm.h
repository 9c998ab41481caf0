/* edgellm C API: load a GGUF model, tokenize, apply its chat template, generate text, evaluate
 * logits, and ask what the device can do, from C or any language with a C FFI.
 *
 * Conventions (as llama.h):
 *  - Opaque handles (edgellm_model, edgellm_context, edgellm_sampler) created by the *_load and *_create functions
 *    and released by the matching *_free; freeing NULL is a no-op.
 *  - Parameter structs are filled by *_default_params() and then changed field by field, so that
 *    new fields added at the end keep old code working.
 *  - Every fallible function returns an edgellm_status; on failure edgellm_last_error() gives a
 *    message naming the problem. No C++ exception crosses this boundary.
 *  - Strings are UTF-8. Text outputs go to caller buffers: the function writes at most `cap`
 *    bytes plus a terminating NUL when it fits, sets *n_out to the full length (without NUL), and
 *    returns EDGELLM_ERR_BUFFER_TOO_SMALL when cap <= length (call again with a larger buffer).
 *
 * Thread safety: a model is read-only once loaded and may be shared by any number of contexts on
 * any threads (the functions taking a `const edgellm_model*` are thread-safe). A context (and a
 * sampler) must be used by one thread at a time; different contexts run in parallel.
 * edgellm_last_error() is per thread.
 */
#ifndef EDGELLM_H
#define EDGELLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define EDGELLM_API __declspec(dllexport)
#elif defined(__GNUC__)
#define EDGELLM_API __attribute__((visibility("default")))
#else
#define EDGELLM_API
#endif

/* Bumped on every incompatible change of this header (struct layouts, signatures). */
#define EDGELLM_API_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

typedef enum edgellm_status {
    EDGELLM_OK = 0,
    EDGELLM_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, out-of-range value, bad token id */
    EDGELLM_ERR_IO = 2,               /* file missing or unreadable */
    EDGELLM_ERR_MODEL = 3,            /* bad or unsupported model file (truncated GGUF, ...) */
    EDGELLM_ERR_USAGE = 4,            /* request that cannot be honoured (too long a prompt, no GPU, memory) */
    EDGELLM_ERR_CANCELLED = 5,        /* a callback asked to stop */
    EDGELLM_ERR_BUFFER_TOO_SMALL = 6, /* *n_out holds the size needed */
    EDGELLM_ERR_INTERNAL = 7          /* anything else (a bug: please report) */
} edgellm_status;

typedef int32_t edgellm_token;
typedef struct edgellm_model edgellm_model;
typedef struct edgellm_context edgellm_context;
typedef struct edgellm_sampler edgellm_sampler;

/* ---- library ------------------------------------------------------------------------------ */

/* Thread-safe. The library version ("0.1.0") and EDGELLM_API_VERSION it was built with. */
EDGELLM_API const char* edgellm_version(void);
EDGELLM_API int edgellm_api_version(void);
/* Thread-safe (per thread). The message of the last failed call on this thread ("" if none);
 * valid until the next failing call on this thread. */
EDGELLM_API const char* edgellm_last_error(void);
/* Thread-safe. A static name of a status code ("EDGELLM_ERR_MODEL"). */
EDGELLM_API const char* edgellm_status_name(edgellm_status s);

/* ---- models ------------------------------------------------------------------------------- */

/* Called during loading with progress in [0, 1]; return false to cancel the load
 * (edgellm_model_load then returns EDGELLM_ERR_CANCELLED). Called on the loading thread at the
 * load's stages: file opened and checked (0.25), weights converted (0.9), done (1.0). */
typedef bool (*edgellm_progress_callback)(float progress, void* user_data);

typedef struct edgellm_model_params {
    int32_t n_threads;  /* threads for converting the weights at load; 0: all */
    bool repack;        /* convert weights to the CPU kernels' packed layout (faster; default true) */
    edgellm_progress_callback progress_callback; /* may be NULL */
    void* progress_user_data;
} edgellm_model_params;

EDGELLM_API edgellm_model_params edgellm_model_default_params(void);
/* Thread-safe. Loads a GGUF file; *out is set only on EDGELLM_OK. */
EDGELLM_API edgellm_status edgellm_model_load(const char* path, const edgellm_model_params* params,
                                              edgellm_model** out);
/* Not thread-safe with other uses of the model: free it after every context on it is freed. */
EDGELLM_API void edgellm_model_free(edgellm_model* model);

typedef struct edgellm_model_info {
    const char* arch;        /* general.architecture ("llama"); owned by the model */
    const char* name;        /* general.name ("" when absent) */
    const char* type_mix;    /* weight types, e.g. "Q4_K: 120, Q6_K: 12, F32: 61" */
    const char* file_type;   /* general.file_type as llama.cpp names it ("Q4_K_M"), "" when absent */
    int64_t n_ctx_train;
    int64_t n_vocab;
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    uint64_t file_bytes;     /* GGUF file size */
    uint64_t weight_bytes;   /* bytes of all weight matrices (what one token's forward pass reads) */
    edgellm_token bos;       /* -1 when none */
    edgellm_token eos;       /* -1 when none */
    bool has_tokenizer;      /* false: only token ids work (tokenize fails, see edgellm_last_error) */
    bool is_encoder;         /* an embedding model (BERT-class): edgellm_embed only, no context/generation */
} edgellm_model_info;

/* Thread-safe. */
EDGELLM_API edgellm_status edgellm_model_get_info(const edgellm_model* model, edgellm_model_info* out);
/* Thread-safe. True for end-of-generation tokens (EOS, EOT, <|im_end|>, ...). */
EDGELLM_API bool edgellm_token_is_eog(const edgellm_model* model, edgellm_token token);

/* ---- text --------------------------------------------------------------------------------- */

/* Thread-safe. Token ids of `text` (text_len bytes; text need not be NUL-terminated). add_bos:
 * prepend BOS when the model wants one; parse_special: text such as "<|im_start|>" becomes its
 * special token. Writes at most `cap` ids; *n_out is the full count (BUFFER_TOO_SMALL when > cap). */
EDGELLM_API edgellm_status edgellm_tokenize(const edgellm_model* model, const char* text, size_t text_len,
                                            bool add_bos, bool parse_special, edgellm_token* tokens, size_t cap,
                                            size_t* n_out);
/* Thread-safe. Text of `tokens`; render_special: control tokens appear as their text. */
EDGELLM_API edgellm_status edgellm_detokenize(const edgellm_model* model, const edgellm_token* tokens, size_t n_tokens,
                                              bool render_special, char* buf, size_t cap, size_t* n_out);
/* Thread-safe. The text of one token (raw bytes of a byte token). */
EDGELLM_API edgellm_status edgellm_token_to_piece(const edgellm_model* model, edgellm_token token, bool render_special,
                                                  char* buf, size_t cap, size_t* n_out);

typedef struct edgellm_chat_message {
    const char* role;    /* "system", "user", "assistant" */
    const char* content;
} edgellm_chat_message;

/* Thread-safe. Renders `messages` with the model's chat template (its own tokenizer.chat_template,
 * else a built-in chosen from its vocabulary), or with `tmpl` when not NULL (a built-in name such as
 * "chatml", or a Jinja2 source). add_generation_prompt: end with the assistant turn's header. The
 * result is text: tokenize it with parse_special = true and add_bos = false when it already starts
 * with the BOS text (edgellm_chat_tokenize does both). */
EDGELLM_API edgellm_status edgellm_chat_apply_template(const edgellm_model* model, const char* tmpl,
                                                       const edgellm_chat_message* messages, size_t n_messages,
                                                       bool add_generation_prompt, char* buf, size_t cap,
                                                       size_t* n_out);
/* Thread-safe. Renders the messages (generation prompt added) and tokenizes them as `edgellm chat`
 * and the server do: special tokens parsed, BOS added unless the template wrote it. */
EDGELLM_API edgellm_status edgellm_chat_tokenize(const edgellm_model* model, const char* tmpl,
                                                 const edgellm_chat_message* messages, size_t n_messages,
                                                 edgellm_token* tokens, size_t cap, size_t* n_out);
/* Thread-safe. Name ("gguf" for the model's own, else the built-in's) and Jinja2 source of the
 * template edgellm_chat_apply_template uses with tmpl = NULL. */
EDGELLM_API edgellm_status edgellm_model_chat_template(const edgellm_model* model, char* name_buf, size_t name_cap,
                                                       char* source_buf, size_t source_cap, size_t* source_len);

/* ---- contexts ----------------------------------------------------------------------------- */

typedef enum edgellm_kv_type {
    EDGELLM_KV_F16 = 0,
    EDGELLM_KV_F32 = 1,
    EDGELLM_KV_Q8_0 = 2,
    EDGELLM_KV_Q4_0 = 3
} edgellm_kv_type;

typedef enum edgellm_flash_attn {
    EDGELLM_FLASH_ATTN_AUTO = -1,
    EDGELLM_FLASH_ATTN_OFF = 0,
    EDGELLM_FLASH_ATTN_ON = 1
} edgellm_flash_attn;

typedef struct edgellm_context_params {
    int64_t n_ctx;            /* positions; 0: the model's trained context, capped at 4096 */
    int64_t n_batch;          /* tokens per forward pass (prompt chunk); default 512 */
    int32_t n_threads;        /* 0: every hardware thread */
    int32_t n_threads_batch;  /* threads for prompt evaluation; 0: n_threads */
    edgellm_kv_type kv_type;  /* default F16 */
    edgellm_flash_attn flash_attn; /* default AUTO */
    /* Layers offloaded to a CUDA GPU (the last ones; more than the layer count adds the output
     * layer). Refused with the reason (EDGELLM_ERR_USAGE) when no GPU can take them: see
     * edgellm_gpu_offload_unavailable_reason() to decide before asking. */
    int32_t n_gpu_layers;
    uint64_t memory_budget_bytes; /* 0: what the machine has available now */
    bool fallback;            /* when it does not fit: smaller context / KV type / fewer GPU layers */
} edgellm_context_params;

EDGELLM_API edgellm_context_params edgellm_context_default_params(void);
/* Thread-safe with respect to the model. */
EDGELLM_API edgellm_status edgellm_context_create(const edgellm_model* model, const edgellm_context_params* params,
                                                  edgellm_context** out);
EDGELLM_API void edgellm_context_free(edgellm_context* ctx);

typedef struct edgellm_context_info {
    int64_t n_ctx;
    int64_t n_batch;
    int32_t n_threads;
    edgellm_kv_type kv_type;
    int32_t n_gpu_layers;      /* layers really offloaded (0 on the CPU) */
    uint64_t kv_bytes;         /* KV cache allocation */
    const char* gpu;           /* what runs on the GPU, "" when nothing; owned by the context */
    const char* fallback_note; /* the fallback rungs taken, "" when the request fitted */
} edgellm_context_info;

EDGELLM_API edgellm_status edgellm_context_get_info(const edgellm_context* ctx, edgellm_context_info* out);

/* ---- generation --------------------------------------------------------------------------- */

#define EDGELLM_SEED_RANDOM UINT64_MAX

typedef struct edgellm_sampling_params {
    float temperature;       /* <= 0: greedy; default 0.8 */
    int32_t top_k;           /* <= 0: off; default 40 */
    float top_p;             /* >= 1: off; default 0.95 */
    float min_p;             /* <= 0: off; default 0.05 */
    float repeat_penalty;    /* 1: off (default) */
    float frequency_penalty; /* 0: off */
    float presence_penalty;  /* 0: off */
    int32_t penalty_last_n;  /* default 64 */
    uint64_t seed;           /* EDGELLM_SEED_RANDOM (default): a fresh seed per call */
    const char* grammar;     /* GBNF grammar the output must match, or NULL */
    const char* json_schema; /* JSON Schema (text) the output must match, or NULL; not with grammar */
} edgellm_sampling_params;

EDGELLM_API edgellm_sampling_params edgellm_sampling_default_params(void);

typedef enum edgellm_stop_reason {
    EDGELLM_STOP_EOS = 0,       /* an end-of-generation token (not included in the output) */
    EDGELLM_STOP_LENGTH = 1,    /* n_predict tokens */
    EDGELLM_STOP_CONTEXT = 2,   /* the context is full */
    EDGELLM_STOP_STRING = 3,    /* a stop string (not included in the text) */
    EDGELLM_STOP_CANCELLED = 4  /* the token callback returned false */
} edgellm_stop_reason;

/* Called on the generating thread for every generated token with the text that can be shown
 * now (`piece`, `len` bytes, not NUL-terminated; may be empty while a UTF-8 character or a
 * possible stop string is incomplete). At the end it is called once more with token = -1 and
 * the text held back until then (possibly empty). Return false to stop (EDGELLM_STOP_CANCELLED). */
typedef bool (*edgellm_token_callback)(edgellm_token token, const char* piece, size_t len, void* user_data);

typedef struct edgellm_generate_params {
    int32_t n_predict;                /* tokens to generate at most; default 128 */
    edgellm_sampling_params sampling;
    const char* const* stop;          /* stop strings (n_stop of them), or NULL */
    size_t n_stop;
    bool ignore_eos;                  /* keep going past end-of-generation tokens */
    /* Reuse the KV of this context's previous keep_kv call for the prompt tokens it shares
     * (chat turns that re-send their history). After edgellm_eval or edgellm_kv_truncate
     * nothing is reused (the KV is evaluated anew). */
    bool keep_kv;
    /* Streams pieces to the callback as the prompt's continuation: a leading space is kept
     * ("Once upon a" -> " time"). */
    edgellm_token_callback on_token;  /* may be NULL */
    void* user_data;
} edgellm_generate_params;

EDGELLM_API edgellm_generate_params edgellm_generate_default_params(void);

typedef struct edgellm_generate_result {
    int64_t n_prompt;       /* prompt tokens */
    int64_t n_cached;       /* of those, reused from the KV (keep_kv) */
    int64_t n_gen;          /* generated tokens */
    edgellm_stop_reason stop_reason;
    double prefill_ms, decode_ms, sample_ms, ttft_ms;
    double prefill_tokens_per_s, decode_tokens_per_s;
} edgellm_generate_result;

/* Uses ctx from one thread at a time. Generates after `prompt` (n_prompt > 0 tokens that leave
 * room for one more in the context); result may be NULL. */
EDGELLM_API edgellm_status edgellm_generate(edgellm_context* ctx, const edgellm_token* prompt, size_t n_prompt,
                                            const edgellm_generate_params* params, edgellm_generate_result* result);

/* ---- lower level: evaluate tokens, read logits, sample ------------------------------------ */

/* Uses ctx from one thread at a time. Appends `tokens` to the context's sequence (after the
 * positions already evaluated: edgellm_kv_len) and computes next-token logits for the last token,
 * or for every token when all_logits. The logits stay valid until the next eval/generate. */
EDGELLM_API edgellm_status edgellm_eval(edgellm_context* ctx, const edgellm_token* tokens, size_t n_tokens,
                                        bool all_logits);
/* Logits [n_vocab] of output i of the last edgellm_eval (-1: the last one), NULL when out of range. */
EDGELLM_API const float* edgellm_get_logits(edgellm_context* ctx, int32_t i);
/* Positions evaluated so far; edgellm_kv_truncate keeps the first n (rollback, n = 0 clears). */
EDGELLM_API int64_t edgellm_kv_len(const edgellm_context* ctx);
EDGELLM_API edgellm_status edgellm_kv_truncate(edgellm_context* ctx, int64_t n);

/* A sampler chain (penalties -> top-k -> top-p -> min-p -> temperature -> pick, or greedy; with
 * a grammar first). Use from one thread at a time. */
EDGELLM_API edgellm_status edgellm_sampler_create(const edgellm_model* model, const edgellm_sampling_params* params,
                                                  edgellm_sampler** out);
EDGELLM_API void edgellm_sampler_free(edgellm_sampler* s);
/* Picks a token from logits [n_vocab] and records it as generated (penalties, grammar). */
EDGELLM_API edgellm_status edgellm_sampler_sample(edgellm_sampler* s, const float* logits, edgellm_token* out);

/* ---- embeddings ----------------------------------------------------------------------------- */

typedef enum edgellm_pooling {
    EDGELLM_POOLING_MODEL = -1, /* the model's own ({arch}.pooling_type; mean for encoders, last token for decoders) */
    EDGELLM_POOLING_MEAN = 1,
    EDGELLM_POOLING_CLS = 2,
    EDGELLM_POOLING_LAST = 3
} edgellm_pooling;

typedef struct edgellm_embed_params {
    int32_t pooling;  /* an edgellm_pooling value */
    bool normalize;   /* L2-normalise each vector (default true) */
    bool truncate;    /* cut inputs longer than the context (default true); false: EDGELLM_ERR_USAGE */
    int32_t n_threads; /* 0: all cores */
} edgellm_embed_params;

EDGELLM_API edgellm_embed_params edgellm_embed_default_params(void);
/* Thread-safe (each call has its own batch state; the model is shared read-only). One vector per
 * text, for an encoder (BERT-class) or a decoder model, the texts batched into few forward passes.
 * Writes n_texts * n_embd floats to `out` (row i is text i) when cap >= that; *n_embd_out is the
 * vector length (BUFFER_TOO_SMALL with *n_embd_out set when cap is too small). */
EDGELLM_API edgellm_status edgellm_embed(const edgellm_model* model, const char* const* texts, size_t n_texts,
                                         const edgellm_embed_params* params, float* out, size_t cap,
                                         int64_t* n_embd_out);

/* ---- device ------------------------------------------------------------------------------- */

/* Thread-safe. What `edgellm device --json` prints: {"device", "capabilities",
 * "recommended_settings"}, and with model_path != NULL also {"model", "plan"} (the memory plan for
 * a context of n_ctx tokens, 0: the model's default) or {"error"} when no plan fits. */
EDGELLM_API edgellm_status edgellm_device_info_json(const char* model_path, int64_t n_ctx, char* buf, size_t cap,
                                                    size_t* n_out);
/* Thread-safe. Why layers cannot be offloaded to a GPU here ("this build has no CUDA kernels",
 * "no CUDA device found"), or "" when they can. */
EDGELLM_API edgellm_status edgellm_gpu_offload_unavailable_reason(char* buf, size_t cap, size_t* n_out);

#ifdef __cplusplus
}
#endif

#endif /* EDGELLM_H */
