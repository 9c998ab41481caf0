// Constructors of the concrete backends (each defined in its own file), used by the registry.
#pragma once
#include <memory>
#include <string>

#include "backends/backend.h"

namespace edgellm::backends {

std::unique_ptr<backend> make_native_backend();
std::unique_ptr<backend> make_llama_cpp_backend();
std::unique_ptr<backend> make_ollama_backend();
// preset: "" (plain), "vllm", "tensorrt_llm", "tgi", "sglang", "lmstudio"
std::unique_ptr<backend> make_openai_backend(const std::string& preset);
// worker: "transformers", "llama_cpp_python", "onnxruntime_genai"
std::unique_ptr<backend> make_python_worker_backend(const std::string& worker);

}  // namespace edgellm::backends
