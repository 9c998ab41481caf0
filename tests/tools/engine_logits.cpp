// Test helper exposing the engine's next-token logits to the Python oracle tests:
//   engine_logits MODEL.gguf "ID ID ..." OUT.f32 [N_THREADS] [N_BATCH]
// writes [n_tokens][n_vocab] little-endian float32: the logits after each prefix of the ids.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"

int main(int argc, char** argv) {
    try {
        if (argc < 4) {
            std::fprintf(stderr, "usage: engine_logits MODEL.gguf \"ID ID ...\" OUT.f32 [N_THREADS] [N_BATCH]\n");
            return 2;
        }
        std::vector<int32_t> ids;
        std::istringstream in(argv[2]);
        int32_t v;
        while (in >> v) ids.push_back(v);
        edgellm::engine::engine_params ep;
        ep.model_path = argv[1];
        ep.n_threads = argc > 4 ? std::stoi(argv[4]) : 0;
        ep.n_batch = argc > 5 ? std::stoll(argv[5]) : 512;
        ep.kv_type = edgellm::ggml_type::f32;
        ep.n_ctx = static_cast<int64_t>(ids.size()) + 1;
        edgellm::engine::engine eng(ep);
        const std::vector<float> logits = eng.all_logits(ids);
        std::ofstream out(argv[3], std::ios::binary);
        out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
        if (!out) throw edgellm::error(std::string("cannot write ") + argv[3]);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
