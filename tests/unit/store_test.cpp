// The model store's pure parts: reference parsing (every form `edgellm pull` accepts, and the
// malformed ones), the index (put/find/remove, shared blobs), -m NAME resolution, SHA-256.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "store/pull.h"
#include "store/sha256.h"
#include "store/store.h"

namespace fs = std::filesystem;
using namespace edgellm;
using namespace edgellm::store;

TEST(StoreRef, FormsAndNames) {
    auto r = parse_ref("bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M");
    EXPECT_EQ(r.kind, ref_kind::hf_quant);
    EXPECT_EQ(r.repo, "bartowski/SmolLM2-135M-Instruct-GGUF");
    EXPECT_EQ(r.quant, "Q4_K_M");
    EXPECT_EQ(r.name, "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M");

    r = parse_ref("hf.co/org/repo");  // Ollama's spelling; llama.cpp's default quant
    EXPECT_EQ(r.kind, ref_kind::hf_quant);
    EXPECT_EQ(r.quant, "Q4_K_M");

    r = parse_ref("hf://ggml-org/models/tinyllamas/stories260K.gguf");
    EXPECT_EQ(r.kind, ref_kind::hf_file);
    EXPECT_EQ(r.repo, "ggml-org/models");
    EXPECT_EQ(r.file, "tinyllamas/stories260K.gguf");

    r = parse_ref("llama3.2:1b");
    EXPECT_EQ(r.kind, ref_kind::ollama);
    EXPECT_EQ(r.registry, "registry.ollama.ai");
    EXPECT_EQ(r.ns, "library");
    EXPECT_EQ(r.model, "llama3.2");
    EXPECT_EQ(r.tag, "1b");
    EXPECT_EQ(r.name, "llama3.2:1b");

    r = parse_ref("qwen2.5");
    EXPECT_EQ(r.tag, "latest");
    EXPECT_EQ(r.name, "qwen2.5:latest");

    r = parse_ref("ollama://someone/model:q4");
    EXPECT_EQ(r.kind, ref_kind::ollama);
    EXPECT_EQ(r.ns, "someone");
    EXPECT_EQ(r.name, "someone/model:q4");

    r = parse_ref("127.0.0.1:5000/library/tiny");  // a registry with a port: the colon is not a tag
    EXPECT_EQ(r.kind, ref_kind::ollama);
    EXPECT_EQ(r.registry, "127.0.0.1:5000");
    EXPECT_EQ(r.tag, "latest");
    EXPECT_EQ(r.name, "127.0.0.1:5000/library/tiny:latest");

    r = parse_ref("localhost:8080/tiny:v2");
    EXPECT_EQ(r.registry, "localhost:8080");
    EXPECT_EQ(r.ns, "library");
    EXPECT_EQ(r.tag, "v2");

    r = parse_ref("https://example.org/files/my-model.Q8_0.gguf?download=1");
    EXPECT_EQ(r.kind, ref_kind::url);
    EXPECT_EQ(r.name, "my-model.Q8_0");
}

TEST(StoreRef, MalformedOnesSayWhy) {
    for (const char* bad : {"", "a//b", "/x", "hf://org", "hf://org/repo", "a/b/c/d/e", "http://", "https://:80/x"}) {
        try {
            parse_ref(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const usage_error& e) {
            EXPECT_FALSE(std::string(e.what()).empty());
        }
    }
}

TEST(StoreIndex, PutFindRemoveKeepsSharedBlobs) {
    const fs::path dir = fs::temp_directory_path() / ("edgellm_store_test_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    model_store st(dir);
    fs::create_directories(st.blobs_dir());
    std::ofstream(st.blob_path("sha256-aa")) << "GGUF1";
    std::ofstream(st.blob_path("sha256-tt")) << "{{ .Prompt }}";
    st.put({"one:latest", "sha256-aa", 5, "src1", now_iso8601(), {{"template", "sha256-tt"}}});
    st.put({"two:latest", "sha256-aa", 5, "src2", now_iso8601(), {}});
    ASSERT_EQ(st.list().size(), 2u);
    ASSERT_TRUE(st.find("one"));  // NAME means NAME:latest
    EXPECT_EQ(st.find("one")->extra.at("template"), "sha256-tt");
    EXPECT_FALSE(st.find("three"));
    EXPECT_EQ(resolve_model("two", dir), st.blob_path("sha256-aa").string());
    EXPECT_THROW(resolve_model("three", dir), error);

    EXPECT_TRUE(st.remove("one"));  // its template goes, the shared model blob stays for "two"
    EXPECT_FALSE(fs::exists(st.blob_path("sha256-tt")));
    EXPECT_TRUE(fs::exists(st.blob_path("sha256-aa")));
    EXPECT_FALSE(st.remove("one"));
    EXPECT_TRUE(st.remove("two:latest"));
    EXPECT_FALSE(fs::exists(st.blob_path("sha256-aa")));
    EXPECT_TRUE(st.list().empty());

    std::ofstream(dir / "index.json") << "{not json";
    EXPECT_THROW(st.list(), error);
    fs::remove_all(dir);
}

TEST(StoreSha256, KnownVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256 h;  // incremental = one-shot
    h.update("a");
    h.update("bc");
    EXPECT_EQ(h.hex(), sha256_hex("abc"));
}
