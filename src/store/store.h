// The model store: models pulled by name live in $EDGELLM_MODELS (default
// ~/.cache/edgellm/models) as content-addressed blobs (blobs/sha256-HEX) with a small index
// (index.json: name -> blob, size, source, time, extra layers such as an Ollama template).
// `-m NAME` anywhere resolves through resolve_model(); `edgellm pull`, `models`, `rm` and the
// server's /api/pull, /api/delete, /api/tags use the same class.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace edgellm::store {

struct entry {
    std::string name;        // "llama3.2:1b", "hf.co/ORG/REPO:Q4_K_M", "stories260K"
    std::string blob;        // "sha256-<hex>": the GGUF file
    uint64_t size = 0;       // bytes
    std::string source;      // where it came from (URL or reference as given)
    std::string pulled_at;   // ISO 8601 UTC
    std::map<std::string, std::string> extra;  // layer kind ("template", "params", ...) -> blob
};

class model_store {
public:
    // dir: the store folder; "" picks $EDGELLM_MODELS, else ~/.cache/edgellm/models.
    explicit model_store(std::filesystem::path dir = {});
    static std::filesystem::path default_dir();

    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path blobs_dir() const { return dir_ / "blobs"; }
    std::filesystem::path blob_path(const std::string& blob) const { return blobs_dir() / blob; }

    std::vector<entry> list() const;                       // sorted by name
    std::optional<entry> find(const std::string& name) const;  // exact, or NAME:latest
    // Adds or replaces an entry (the blob must already be in blobs/). Atomic: the index is
    // rewritten to a temporary file and renamed, under a lock.
    void put(const entry& e);
    // Removes an entry; its blobs go too unless another entry uses them. False if absent.
    bool remove(const std::string& name);

private:
    std::map<std::string, entry> read_index() const;
    void write_index(const std::map<std::string, entry>& idx) const;
    std::filesystem::path dir_;
};

// What `-m REF` means everywhere: an existing file is itself; otherwise a stored model's GGUF
// path. Anything else is an error naming both possibilities (`edgellm models`, `edgellm pull`).
std::string resolve_model(const std::string& ref, const std::filesystem::path& store_dir = {});

std::string now_iso8601();

}  // namespace edgellm::store
