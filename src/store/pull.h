// `edgellm pull REF` and the server's /api/pull: fetch a GGUF model by reference into the model
// store, resumable, digest-verified before anything enters the store.
//
// References:
//   hf://ORG/REPO/FILE.gguf           one file of a Hugging Face repository (LFS sha256 checked)
//   ORG/REPO[:QUANT], hf.co/ORG/REPO[:QUANT]
//                                     the repository's GGUF whose name holds QUANT (default
//                                     Q4_K_M), as llama.cpp's -hf
//   NAME[:TAG], ollama://[HOST/][NS/]NAME[:TAG]
//                                     an Ollama registry model (registry.ollama.ai/library by
//                                     default): manifest v2, the GGUF layer is the model, the
//                                     template/params/system layers are stored beside it
//   http(s)://HOST/PATH.gguf          a plain file (digest checked with --sha256 when given)
// Environment: HF_ENDPOINT (mirror, default https://huggingface.co), HF_TOKEN (gated repos).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "store/store.h"

namespace edgellm::store {

enum class ref_kind { url, hf_file, hf_quant, ollama };

struct model_ref {
    ref_kind kind = ref_kind::url;
    std::string url;                    // url, hf_file: what is fetched (hf_file: filled by pull)
    std::string repo, file, quant;      // hf_*: "ORG/REPO", "FILE.gguf", "Q4_K_M"
    std::string registry, ns, model, tag;  // ollama
    std::string name;                   // the store name it gets
};

// Throws usage_error naming what is wrong with the reference.
model_ref parse_ref(const std::string& ref);

struct pull_options {
    std::string name;                  // store name instead of the derived one
    std::string sha256;                // expected digest of a plain URL's file (hex)
    bool insecure = false;             // Ollama registry over plain http (as `ollama pull --insecure`)
    std::filesystem::path store_dir;   // "" = model_store's default
    double read_timeout_s = 60;
};

// Progress in the shape of Ollama's /api/pull records.
struct pull_progress {
    std::string status;   // "pulling manifest", "pulling <digest>", "verifying sha256 digest", "success"
    std::string digest;   // "sha256:<hex>" while a blob downloads
    uint64_t total = 0;
    uint64_t completed = 0;
};
using progress_fn = std::function<void(const pull_progress&)>;

// Fetches the model and records it in the store; returns its entry. A cut download leaves a
// partial file that the next pull of the same blob resumes (HTTP Range); a digest mismatch
// discards it. Throws edgellm::error with the URL and the cause (401, 404, disk full, ...).
entry pull(const std::string& ref, const pull_options& o, const progress_fn& progress = {});

}  // namespace edgellm::store
