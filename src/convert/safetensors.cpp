// safetensors parsing: header bounds, dtype sizes and data offsets are checked before any use.
#include "convert/safetensors.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "quant/fp16.h"

namespace edgellm::convert {
namespace {

size_t dtype_size(const std::string& d) {
    if (d == "F64" || d == "I64" || d == "U64") return 8;
    if (d == "F32" || d == "I32" || d == "U32") return 4;
    if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
    if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
    return 0;
}

}  // namespace

int64_t st_tensor::n_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

void safetensors_set::add_file(const std::string& path) {
    auto f = std::make_unique<mapped_file>(path);
    const uint8_t* base = f->data();
    const size_t size = f->size();
    if (size < 8)
        throw error(fmt::format("{}: not a safetensors file (only {} bytes)", path, size));
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
    if (header_len > size - 8)
        throw error(fmt::format(
            "{}: safetensors header of {} bytes runs past the end of the file ({} bytes)", path,
            header_len, size));
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(reinterpret_cast<const char*>(base + 8),
                                       reinterpret_cast<const char*>(base + 8 + header_len));
    } catch (const std::exception& e) {
        throw error(fmt::format("{}: safetensors header is not valid JSON: {}", path, e.what()));
    }
    if (!header.is_object())
        throw error(fmt::format("{}: safetensors header is not a JSON object", path));
    const uint8_t* data = base + 8 + header_len;
    const size_t data_size = size - 8 - header_len;
    for (const auto& [name, info] : header.items()) {
        if (name == "__metadata__") continue;
        try {
            st_tensor t;
            t.name = name;
            t.file = path;
            t.dtype = info.at("dtype").get<std::string>();
            for (const auto& d : info.at("shape")) {
                const int64_t v = d.get<int64_t>();
                if (v < 0) throw error("negative dimension");
                t.shape.push_back(v);
            }
            const auto& off = info.at("data_offsets");
            if (!off.is_array() || off.size() != 2) throw error("data_offsets is not [begin, end]");
            const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
            if (b > e || e > data_size)
                throw error(fmt::format("data_offsets [{}, {}] outside the {} data bytes", b, e,
                                        data_size));
            const size_t es = dtype_size(t.dtype);
            if (es == 0) throw error(fmt::format("unknown dtype '{}'", t.dtype));
            if (static_cast<uint64_t>(t.n_elements()) * es != e - b)
                throw error(fmt::format("{} elements of {} do not fill {} bytes", t.n_elements(),
                                        t.dtype, e - b));
            t.data = data + b;
            t.n_bytes = static_cast<size_t>(e - b);
            if (!tensors_.emplace(name, std::move(t)).second)
                throw error("the tensor appears in two files");
        } catch (const nlohmann::json::exception& e) {
            throw error(
                fmt::format("{}: tensor '{}': malformed header entry: {}", path, name, e.what()));
        } catch (const error& e) {
            throw error(fmt::format("{}: tensor '{}': {}", path, name, e.what()));
        }
    }
    files_.push_back(std::move(f));
}

safetensors_set safetensors_set::open_dir(const std::string& dir) {
    namespace fs = std::filesystem;
    safetensors_set s;
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    std::vector<std::string> files;
    if (fs::exists(index)) {
        std::ifstream in(index);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(in);
        } catch (const std::exception& e) {
            throw error(fmt::format("{}: not valid JSON: {}", index.string(), e.what()));
        }
        if (!j.contains("weight_map") || !j["weight_map"].is_object())
            throw error(fmt::format("{}: has no \"weight_map\" object", index.string()));
        std::set<std::string> shards;
        for (const auto& [name, file] : j["weight_map"].items())
            shards.insert(file.get<std::string>());
        for (const std::string& f : shards) {
            const fs::path p = fs::path(dir) / f;
            if (!fs::exists(p))
                throw error(
                    fmt::format("shard {} named by {} is missing", p.string(), index.string()));
            files.push_back(p.string());
        }
    } else {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
        if (ec) throw error(fmt::format("cannot read directory {}: {}", dir, ec.message()));
        std::sort(files.begin(), files.end());
    }
    if (files.empty())
        throw error(
            fmt::format("{} has no model weights: expected model.safetensors (or shards with "
                        "model.safetensors.index.json)",
                        dir));
    for (const std::string& f : files) s.add_file(f);
    return s;
}

const st_tensor* safetensors_set::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<float> safetensors_set::to_f32(const st_tensor& t) {
    const auto n = static_cast<size_t>(t.n_elements());
    std::vector<float> out(n);
    if (t.dtype == "F32") {
        std::memcpy(out.data(), t.data, n * 4);
    } else if (t.dtype == "F16" || t.dtype == "BF16") {
        for (size_t i = 0; i < n; ++i) {
            uint16_t h;
            std::memcpy(&h, t.data + 2 * i, 2);
            if (t.dtype == "F16") {
                out[i] = fp16_to_fp32(h);
            } else {
                const uint32_t u = uint32_t{h} << 16;
                std::memcpy(&out[i], &u, 4);
            }
        }
    } else {
        throw error(
            fmt::format("tensor '{}' has dtype {}; only F32, F16 and BF16 weights can be converted",
                        t.name, t.dtype));
    }
    return out;
}

}  // namespace edgellm::convert
