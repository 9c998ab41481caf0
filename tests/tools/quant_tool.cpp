// Test helper exposing the reference (de)quantizers to the Python oracle tests:
//   quant_tool dequant TYPE IN.bin OUT.f32   raw blocks -> little-endian float32
//   quant_tool quant   TYPE IN.f32 OUT.bin   float32 -> raw blocks
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/ggml_type.h"
#include "quant/quant.h"

namespace {
std::vector<char> read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw edgellm::error("cannot open " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const void* data, size_t n) {
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    if (!out) throw edgellm::error("cannot write " + path);
}
}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc != 5) {
            std::cerr << "usage: quant_tool dequant|quant TYPE IN OUT\n";
            return 2;
        }
        const std::string mode = argv[1];
        const auto type = edgellm::type_from_name(argv[2]);
        if (!type) throw edgellm::error(std::string("unknown type ") + argv[2]);
        const auto& tr = edgellm::type_traits(*type);
        const auto in = read_all(argv[3]);
        if (mode == "dequant") {
            if (in.size() % tr.type_size != 0) throw edgellm::error("input is not a whole number of blocks");
            const int64_t n = static_cast<int64_t>(in.size() / tr.type_size) * tr.block_size;
            std::vector<float> out(static_cast<size_t>(n));
            edgellm::dequantize_row(*type, in.data(), out.data(), n);
            write_all(argv[4], out.data(), out.size() * sizeof(float));
        } else if (mode == "quant") {
            const int64_t n = static_cast<int64_t>(in.size() / sizeof(float));
            std::vector<float> src(static_cast<size_t>(n));
            std::copy(in.begin(), in.end(), reinterpret_cast<char*>(src.data()));
            std::vector<uint8_t> out(edgellm::row_size(*type, n));
            edgellm::quantize_row(*type, src.data(), out.data(), n);
            write_all(argv[4], out.data(), out.size());
        } else {
            throw edgellm::error("unknown mode " + mode);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
