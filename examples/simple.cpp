// edgellm from C++: the C API with RAII handles. Prints the model's facts to stderr and the
// greedy continuation of the prompt to stdout (the same text as `edgellm run ... --temp 0`).
//
//   c++ -std=c++17 simple.cpp $(pkg-config --cflags --libs edgellm) -o simple_cpp
//   ./simple_cpp stories260K.gguf "Once upon a time" 32
#include <edgellm/edgellm.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(edgellm_status s, const char* what) {
    if (s != EDGELLM_OK) throw std::runtime_error(std::string(what) + ": " + edgellm_last_error());
}

struct model_free {
    void operator()(edgellm_model* m) const { edgellm_model_free(m); }
};
struct context_free {
    void operator()(edgellm_context* c) const { edgellm_context_free(c); }
};

std::vector<edgellm_token> tokenize(const edgellm_model* m, const std::string& text) {
    std::vector<edgellm_token> ids(text.size() + 2);
    size_t n = 0;
    edgellm_status s = edgellm_tokenize(m, text.data(), text.size(), true, false, ids.data(), ids.size(), &n);
    if (s == EDGELLM_ERR_BUFFER_TOO_SMALL) {
        ids.resize(n);
        s = edgellm_tokenize(m, text.data(), text.size(), true, false, ids.data(), ids.size(), &n);
    }
    check(s, "tokenize");
    ids.resize(n);
    return ids;
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf PROMPT [N_PREDICT]\n";
        return 2;
    }
    edgellm_model* raw_model = nullptr;
    check(edgellm_model_load(argv[1], nullptr, &raw_model), "load");
    std::unique_ptr<edgellm_model, model_free> model(raw_model);

    edgellm_model_info info{};
    check(edgellm_model_get_info(model.get(), &info), "model info");
    std::cerr << "model: " << info.arch << ", " << info.n_layer << " layers, vocab " << info.n_vocab << ", trained context "
              << info.n_ctx_train << ", weights " << info.type_mix << "\n";

    edgellm_context* raw_ctx = nullptr;
    const edgellm_context_params cp = edgellm_context_default_params();
    check(edgellm_context_create(model.get(), &cp, &raw_ctx), "context");
    std::unique_ptr<edgellm_context, context_free> ctx(raw_ctx);

    const std::vector<edgellm_token> prompt = tokenize(model.get(), argv[2]);
    std::string text;
    edgellm_generate_params gp = edgellm_generate_default_params();
    gp.n_predict = argc > 3 ? std::stoi(argv[3]) : 32;
    gp.sampling.temperature = 0.0f;
    gp.user_data = &text;
    gp.on_token = [](edgellm_token, const char* piece, size_t len, void* ud) {
        static_cast<std::string*>(ud)->append(piece, len);
        return true;
    };
    edgellm_generate_result r{};
    check(edgellm_generate(ctx.get(), prompt.data(), prompt.size(), &gp, &r), "generate");
    std::cout << text << "\n";
    std::cerr << "generated " << r.n_gen << " tokens\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "simple_cpp: " << e.what() << "\n";
    return 1;
}
