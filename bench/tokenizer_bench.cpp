// Tokenizer throughput: ~1 MiB of text through the Qwen2 (151,936-token byte-level BPE),
// Llama 3 and Llama SPM vocabs. Text: the shared docs and test strings repeated, plus a
// variant with every word made unique so that the per-word merge cache never hits.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
constexpr size_t k_text_bytes = 1 << 20;

fs::path shared_dir() {
    if (const char* env = std::getenv("EDGELLM_SHARED")) return env;
    return fs::path(__FILE__).parent_path().parent_path().parent_path() / "shared";
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Real prose and the multilingual test strings, repeated to 1 MiB.
const std::string& corpus() {
    static const std::string text = [] {
        std::string base;
        for (const char* rel : {"seed/what-are-llms.md", "docs/DESIGN.md", "models/stories260K.greedy.txt",
                                "tokenizer/ggml-vocab-qwen2.gguf.inp", "tokenizer/ggml-vocab-llama-bpe.gguf.inp"})
            base += read_file(shared_dir() / rel);
        if (base.empty()) base = "The quick brown fox jumps over the lazy dog. ";
        std::string t;
        while (t.size() < k_text_bytes) t += base;
        t.resize(k_text_bytes);
        return t;
    }();
    return text;
}

// Random lowercase "words" of 2-12 letters: almost no word repeats, so every word is merged.
const std::string& unique_words_corpus() {
    static const std::string text = [] {
        std::mt19937 rng(42);
        std::uniform_int_distribution<int> len(2, 12), letter(0, 25);
        std::string t;
        while (t.size() < k_text_bytes) {
            const int n = len(rng);
            t.push_back(' ');
            for (int i = 0; i < n; ++i) t.push_back(static_cast<char>('a' + letter(rng)));
        }
        t.resize(k_text_bytes);
        return t;
    }();
    return text;
}

std::unique_ptr<edgellm::tokenizer> load(const std::string& name) {
    const fs::path p = shared_dir() / "tokenizer" / ("ggml-vocab-" + name + ".gguf");
    if (!fs::exists(p)) return nullptr;
    const auto file = edgellm::gguf::file::open(p.string());
    return edgellm::tokenizer::from_gguf(file);
}

const edgellm::tokenizer* cached(const std::string& name) {
    static std::map<std::string, std::unique_ptr<edgellm::tokenizer>> cache;
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, load(name)).first;
    return it->second.get();
}

void run_encode(benchmark::State& state, const std::string& vocab_name, const std::string& text, bool fresh) {
    if (!cached(vocab_name)) {
        state.SkipWithError("shared vocab missing (set EDGELLM_SHARED)");
        return;
    }
    size_t n_tokens = 0;
    for (auto _ : state) {
        std::unique_ptr<edgellm::tokenizer> own;
        const edgellm::tokenizer* tok = cached(vocab_name);
        if (fresh) {
            // A new tokenizer has an empty word cache: the cold-start figure.
            state.PauseTiming();
            own = load(vocab_name);
            tok = own.get();
            state.ResumeTiming();
        }
        const auto ids = tok->encode(text, false, false);
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
    state.counters["tokens"] = static_cast<double>(n_tokens);
    state.counters["tokens_per_s"] =
        benchmark::Counter(static_cast<double>(n_tokens), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_qwen2_1MiB_prose_warm(benchmark::State& s) { run_encode(s, "qwen2", corpus(), false); }
void BM_qwen2_1MiB_prose_cold(benchmark::State& s) { run_encode(s, "qwen2", corpus(), true); }
void BM_qwen2_1MiB_unique_words_cold(benchmark::State& s) { run_encode(s, "qwen2", unique_words_corpus(), true); }
void BM_llama3_1MiB_prose_warm(benchmark::State& s) { run_encode(s, "llama-bpe", corpus(), false); }
void BM_llama_spm_1MiB_prose(benchmark::State& s) { run_encode(s, "llama-spm", corpus(), false); }

void BM_qwen2_load_vocab(benchmark::State& state) {
    for (auto _ : state) {
        auto tok = load("qwen2");
        if (!tok) {
            state.SkipWithError("shared vocab missing");
            return;
        }
        benchmark::DoNotOptimize(tok.get());
    }
}

BENCHMARK(BM_qwen2_1MiB_prose_warm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_qwen2_1MiB_prose_cold)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_qwen2_1MiB_unique_words_cold)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_llama3_1MiB_prose_warm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_llama_spm_1MiB_prose)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_qwen2_load_vocab)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
