// The backend registry: every backend edgellm knows, by name and alias.
#include <algorithm>
#include <cctype>

#include "backends/backend.h"
#include "backends/factories.h"
#include "core/error.h"

namespace edgellm::backends {

const std::vector<backend_info>& registry() {
    static const std::vector<backend_info> r = {
        {"native", "edgellm's built-in engine (GGUF, CPU SIMD kernels)", {"edgellm"}, make_native_backend},
        {"llama_cpp", "llama.cpp through llama-server (spawned from a binary, or a running URL)",
         {"llama.cpp", "llamacpp", "llama-cpp", "llama_server"}, make_llama_cpp_backend},
        {"ollama", "Ollama REST API (/api/generate, /api/chat)", {}, make_ollama_backend},
        {"openai", "any OpenAI-compatible server (/v1/completions, /v1/chat/completions)",
         {"openai_compatible"}, [] { return make_openai_backend(""); }},
        {"vllm", "vLLM's OpenAI-compatible server (openai preset)", {}, [] { return make_openai_backend("vllm"); }},
        {"tensorrt_llm", "TensorRT-LLM's OpenAI-compatible server (openai preset)", {"trtllm", "tensorrt-llm"},
         [] { return make_openai_backend("tensorrt_llm"); }},
        {"tgi", "Hugging Face TGI's OpenAI-compatible API (openai preset)", {}, [] { return make_openai_backend("tgi"); }},
        {"sglang", "SGLang's OpenAI-compatible server (openai preset)", {}, [] { return make_openai_backend("sglang"); }},
        {"lmstudio", "LM Studio's OpenAI-compatible server (openai preset)", {"lm_studio"},
         [] { return make_openai_backend("lmstudio"); }},
        {"transformers", "Hugging Face Transformers in a Python worker process", {"hf"},
         [] { return make_python_worker_backend("transformers"); }},
        {"llama_cpp_python", "llama-cpp-python in a Python worker process", {"llama-cpp-python"},
         [] { return make_python_worker_backend("llama_cpp_python"); }},
        {"onnxruntime_genai", "ONNX Runtime GenAI in a Python worker process", {"onnxruntime", "onnx", "ort"},
         [] { return make_python_worker_backend("onnxruntime_genai"); }},
    };
    return r;
}

namespace {
std::string normalise(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}
}  // namespace

const backend_info& find_backend(std::string_view name) {
    const std::string n = normalise(name);
    for (const auto& b : registry()) {
        if (b.name == n) return b;
        for (const auto& a : b.aliases)
            if (a == n) return b;
    }
    std::string known;
    for (const auto& b : registry()) known += (known.empty() ? "" : ", ") + b.name;
    throw usage_error("unknown backend '" + std::string(name) + "' (known: " + known + ")");
}

std::unique_ptr<backend> create_backend(std::string_view name) { return find_backend(name).create(); }

}  // namespace edgellm::backends
