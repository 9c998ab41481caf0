// Test helper exposing the GGUF reader/writer to the Python gguf oracle tests:
//   gguf_tool dump FILE             exact JSON of header, metadata and tensors (sha256 of bytes)
//   gguf_tool write SPEC.json OUT   writes a GGUF with our writer from a JSON spec
//   gguf_tool rewrite IN OUT        reads IN and writes it again with our writer
// Values are encoded as {"type": T, "value": V}; strings as hex bytes (exact for any bytes),
// arrays as {"type": "array", "elem_type": T, "value": [encoded items]}.
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "gguf/gguf.h"

using namespace edgellm;
using namespace edgellm::gguf;
using nlohmann::json;

namespace {

// SHA-256 (FIPS 180-4), enough for hashing tensor bytes in tests.
std::string sha256_hex(const uint8_t* data, size_t n) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    auto rotr = [](uint32_t x, int r) { return (x >> r) | (x << (32 - r)); };
    std::vector<uint8_t> tail(data + (n / 64) * 64, data + n);
    tail.push_back(0x80);
    while (tail.size() % 64 != 56) tail.push_back(0);
    const uint64_t bits = static_cast<uint64_t>(n) * 8;
    for (int i = 7; i >= 0; --i) tail.push_back(static_cast<uint8_t>(bits >> (8 * i)));
    auto block = [&](const uint8_t* p) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i) w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; ++i) {
            const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    };
    for (size_t i = 0; i + 64 <= n; i += 64) block(data + i);
    for (size_t i = 0; i < tail.size(); i += 64) block(tail.data() + i);
    char out[65];
    for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
    return out;
}

std::string to_hex(const std::string& s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

std::string from_hex(const std::string& h) {
    if (h.size() % 2) throw error("odd-length hex string");
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        throw error("bad hex digit");
    };
    std::string out;
    for (size_t i = 0; i < h.size(); i += 2) out += static_cast<char>(nib(h[i]) << 4 | nib(h[i + 1]));
    return out;
}

value_type type_from_label(const std::string& s) {
    for (uint32_t t = 0; t <= 12; ++t)
        if (value_type_name(static_cast<value_type>(t)) == s) return static_cast<value_type>(t);
    throw error("unknown value type '" + s + "'");
}

json encode(const value& v) {
    json j = {{"type", std::string(value_type_name(v.type))}};
    switch (v.type) {
        case value_type::string: j["value"] = to_hex(v.as_string()); break;
        case value_type::boolean: j["value"] = v.as_bool(); break;
        case value_type::f32: case value_type::f64: {
            const double d = v.as_f64();
            j["value"] = std::isnan(d) ? json("nan") : std::isinf(d) ? json(d > 0 ? "inf" : "-inf") : json(d);
            break;
        }
        case value_type::array: {
            j["elem_type"] = std::string(value_type_name(v.as_array().elem_type));
            auto items = json::array();
            for (const auto& it : v.as_array().items) items.push_back(encode(it));
            j["value"] = std::move(items);
            break;
        }
        default:
            if (const auto* u = std::get_if<uint64_t>(&v.data)) j["value"] = *u;
            else j["value"] = std::get<int64_t>(v.data);
    }
    return j;
}

value decode(const json& j) {
    const value_type t = type_from_label(j.at("type").get<std::string>());
    const json& v = j.at("value");
    switch (t) {
        case value_type::string: return value::make_string(from_hex(v.get<std::string>()));
        case value_type::boolean: return value::make_bool(v.get<bool>());
        case value_type::f32: return value::make_f32(v.get<float>());
        case value_type::f64: return value::make_f64(v.get<double>());
        case value_type::array: {
            std::vector<value> items;
            for (const auto& it : v) items.push_back(decode(it));
            return value::make_array(type_from_label(j.at("elem_type").get<std::string>()), std::move(items));
        }
        case value_type::u8: case value_type::u16: case value_type::u32: case value_type::u64:
            return value{t, v.get<uint64_t>()};
        default:
            return value{t, v.get<int64_t>()};
    }
}

int dump(const std::string& path) {
    const file f = file::open(path);
    json j = {{"version", f.version()}, {"alignment", f.alignment()}, {"data_offset", f.data_offset()}};
    auto meta = json::array();
    for (const auto& [k, v] : f.metadata()) meta.push_back({{"key", k}, {"value", encode(v)}});
    j["metadata"] = std::move(meta);
    auto ts = json::array();
    for (const auto& t : f.tensors())
        ts.push_back({{"name", t.name},
                      {"type", std::string(type_name(t.type))},
                      {"shape", std::vector<int64_t>(t.ne, t.ne + t.n_dims)},
                      {"offset", t.offset},
                      {"size_bytes", t.size_bytes},
                      {"sha256", sha256_hex(t.data, t.size_bytes)}});
    j["tensors"] = std::move(ts);
    std::cout << j.dump() << "\n";
    return 0;
}

int write(const std::string& spec_path, const std::string& out) {
    std::ifstream in(spec_path);
    const json spec = json::parse(in);
    writer w;
    if (spec.contains("alignment")) w.set_alignment(spec["alignment"].get<uint32_t>());
    for (const auto& kv : spec.at("metadata")) w.set(kv.at("key").get<std::string>(), decode(kv.at("value")));
    for (const auto& t : spec.at("tensors")) {
        const auto type = type_from_name(t.at("type").get<std::string>());
        if (!type) throw error("unknown tensor type " + t.at("type").get<std::string>());
        const std::string bytes = from_hex(t.at("data_hex").get<std::string>());
        w.add_tensor(t.at("name").get<std::string>(), *type, t.at("shape").get<std::vector<int64_t>>(),
                     std::vector<uint8_t>(bytes.begin(), bytes.end()));
    }
    w.write(out);
    return 0;
}

int rewrite(const std::string& in, const std::string& out) {
    const file f = file::open(in);
    writer w;
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const auto& t : f.tensors())
        w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.size_bytes);
    w.write(out);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "dump" && argc == 3) return dump(argv[2]);
        if (cmd == "write" && argc == 4) return write(argv[2], argv[3]);
        if (cmd == "rewrite" && argc == 4) return rewrite(argv[2], argv[3]);
        std::fprintf(stderr, "usage: gguf_tool dump FILE | write SPEC.json OUT | rewrite IN OUT\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
