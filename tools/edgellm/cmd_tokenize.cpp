// `edgellm tokenize` / `edgellm detokenize`: text to token ids and back with a model's
// tokenizer (vocab-only GGUFs work), like llama.cpp's llama-tokenize.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "store/store.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace edgellm::cli {
namespace {

struct tokenize_flags {
    std::string model;
    std::string prompt;
    std::string file;
    bool no_bos = false;
    bool parse_special = false;
    bool ids_only = false;
    CLI::Option* prompt_opt = nullptr;
    CLI::Option* file_opt = nullptr;
};

struct detokenize_flags {
    std::string model;
    std::vector<std::string> ids;
    bool render_special = false;
};

std::string read_text_file(const std::string& path) {
    if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    std::ifstream in(path, std::ios::binary);
    if (!in) throw usage_error("cannot open text file '" + path + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Control bytes in a piece would garble the terminal; show them escaped.
std::string printable(const std::string& piece) {
    std::string out;
    for (unsigned char c : piece) {
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02x}", c);
        else out.push_back(static_cast<char>(c));
    }
    return out;
}

void run_tokenize(const tokenize_flags& fl) {
    const bool has_prompt = fl.prompt_opt->count() > 0, has_file = fl.file_opt->count() > 0;
    if (has_prompt == has_file) throw usage_error("give exactly one of -p TEXT or -f FILE");
    const std::string text = has_file ? read_text_file(fl.file) : fl.prompt;
    const auto file = gguf::file::open(store::resolve_model(fl.model));
    const auto tok = tokenizer::from_gguf(file);
    const auto ids = tok->encode(text, !fl.no_bos, fl.parse_special);
    std::string out;
    if (fl.ids_only) {
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) out += ' ';
            out += std::to_string(ids[i]);
        }
        out += '\n';
    } else {
        for (int32_t id : ids) out += fmt::format("{:6d} -> '{}'\n", id, printable(tok->token_to_piece(id, true)));
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

void run_detokenize(const detokenize_flags& fl) {
    std::vector<int32_t> ids;
    // Ids may come as separate arguments or as one quoted, space/comma-separated list.
    for (const std::string& arg : fl.ids) {
        std::string s = arg;
        for (char& c : s)
            if (c == ',' || c == '[' || c == ']') c = ' ';
        std::istringstream in(s);
        std::string word;
        while (in >> word) {
            size_t used = 0;
            long long v = 0;
            try {
                v = std::stoll(word, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != word.size()) throw usage_error("'" + word + "' is not a token id");
            if (v < 0 || v > INT32_MAX) throw usage_error("token id " + word + " is out of range");
            ids.push_back(static_cast<int32_t>(v));
        }
    }
    const auto file = gguf::file::open(store::resolve_model(fl.model));
    const auto tok = tokenizer::from_gguf(file);
    std::string text = tok->decode(ids, fl.render_special);
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), stdout);
}

void setup_tokenize(CLI::App& app) {
    auto fl = std::make_shared<tokenize_flags>();
    auto* cmd = app.add_subcommand("tokenize", "Turn text into token ids with a model's tokenizer");
    cmd->footer(
        "Examples:\n"
        "  edgellm tokenize -m model.gguf -p 'Hello world'          # id -> 'piece' per line\n"
        "  edgellm tokenize -m model.gguf -f prompt.txt --ids        # space-separated ids\n"
        "  edgellm tokenize -m qwen.gguf -p '<|im_start|>user' --parse-special\n"
        "Vocab-only GGUF files (no tensors) work. Use -f - to read stdin.");
    cmd->add_option("-m,--model", fl->model, "GGUF model or vocab file")->required();
    fl->prompt_opt = cmd->add_option("-p,--prompt", fl->prompt, "Text to tokenize");
    fl->file_opt = cmd->add_option("-f,--file", fl->file, "Read the text from a file ('-' for stdin)");
    cmd->add_flag("--no-bos", fl->no_bos, "Do not add BOS/EOS even if the model asks for them");
    cmd->add_flag("--parse-special", fl->parse_special, "Recognise control-token text such as <|im_end|>");
    cmd->add_flag("--ids", fl->ids_only, "Print only the ids, space-separated, on one line");
    cmd->callback([fl] { run_tokenize(*fl); });
}

void setup_detokenize(CLI::App& app) {
    auto fl = std::make_shared<detokenize_flags>();
    auto* cmd = app.add_subcommand("detokenize", "Turn token ids back into text");
    cmd->footer(
        "Examples:\n"
        "  edgellm detokenize -m model.gguf 15043 3186\n"
        "  edgellm detokenize -m model.gguf \"$(edgellm tokenize -m model.gguf -p hi --ids)\" --render-special");
    cmd->add_option("-m,--model", fl->model, "GGUF model or vocab file")->required();
    cmd->add_option("ids", fl->ids, "Token ids (separate arguments or one space/comma-separated list)")->required();
    cmd->add_flag("--render-special", fl->render_special, "Show control tokens such as <s> as text");
    cmd->callback([fl] { run_detokenize(*fl); });
}

}  // namespace

EDGELLM_REGISTER_COMMAND("tokenize", 85, setup_tokenize);
EDGELLM_REGISTER_COMMAND("detokenize", 86, setup_detokenize);

}  // namespace edgellm::cli
