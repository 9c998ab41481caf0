// Test helper for the Python tokenizer oracle: tokenizes many strings with one vocab load.
// Usage: tokenize_tool MODEL.gguf ADD_BOS(0|1) PARSE_SPECIAL(0|1) < records
// Each input record is a 4-byte little-endian length followed by that many bytes; for each
// record one line of space-separated ids is printed, then a line with the hex of decode(ids).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: tokenize_tool MODEL.gguf ADD_BOS PARSE_SPECIAL < records\n");
        return 2;
    }
    try {
        const auto file = edgellm::gguf::file::open(argv[1]);
        const auto tok = edgellm::tokenizer::from_gguf(file);
        const bool add_bos = std::string(argv[2]) == "1";
        const bool parse_special = std::string(argv[3]) == "1";
        std::string out;
        for (;;) {
            unsigned char len_bytes[4];
            if (std::fread(len_bytes, 1, 4, stdin) != 4) break;
            const uint32_t n = len_bytes[0] | (len_bytes[1] << 8) | (len_bytes[2] << 16) |
                               (static_cast<uint32_t>(len_bytes[3]) << 24);
            std::string text(n, '\0');
            if (n && std::fread(text.data(), 1, n, stdin) != n) {
                std::fprintf(stderr, "truncated record\n");
                return 2;
            }
            const auto ids = tok->encode(text, add_bos, parse_special);
            for (size_t i = 0; i < ids.size(); ++i) {
                if (i) out += ' ';
                out += std::to_string(ids[i]);
            }
            out += '\n';
            static const char* hex = "0123456789abcdef";
            for (unsigned char c : tok->decode(ids)) {
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 15]);
            }
            out += '\n';
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
