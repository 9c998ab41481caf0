// GGUF v3 writer: serialises metadata and tensor infos, then streams tensor data (each tensor
// zero-padded to the alignment, as gguf-py does) so large models never sit in memory twice.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "gguf/gguf.h"

namespace edgellm::gguf {
namespace {

class byte_sink {
public:
    explicit byte_sink(std::vector<uint8_t>& out) : out_(out) {}
    template <typename T>
    void put(T v) {
        put_bytes(&v, sizeof(T));
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        put_bytes(s.data(), s.size());
    }
    void put_bytes(const void* p, size_t n) {
        if (n == 0) return;
        const size_t at = out_.size();
        out_.resize(at + n);
        std::memcpy(out_.data() + at, p, n);
    }

private:
    std::vector<uint8_t>& out_;
};

// Writes the payload of `v` (without its type tag, which the caller writes).
void put_value(byte_sink& out, const value& v, const std::string& key) {
    switch (v.type) {
        case value_type::u8: out.put<uint8_t>(static_cast<uint8_t>(v.as_u64())); return;
        case value_type::i8: out.put<int8_t>(static_cast<int8_t>(v.as_i64())); return;
        case value_type::u16: out.put<uint16_t>(static_cast<uint16_t>(v.as_u64())); return;
        case value_type::i16: out.put<int16_t>(static_cast<int16_t>(v.as_i64())); return;
        case value_type::u32: out.put<uint32_t>(static_cast<uint32_t>(v.as_u64())); return;
        case value_type::i32: out.put<int32_t>(static_cast<int32_t>(v.as_i64())); return;
        case value_type::u64: out.put<uint64_t>(v.as_u64()); return;
        case value_type::i64: out.put<int64_t>(v.as_i64()); return;
        case value_type::f32: out.put<float>(static_cast<float>(v.as_f64())); return;
        case value_type::f64: out.put<double>(v.as_f64()); return;
        case value_type::boolean: out.put<uint8_t>(v.as_bool() ? 1 : 0); return;
        case value_type::string: out.put_string(v.as_string()); return;
        case value_type::array: {
            const auto& arr = v.as_array();
            out.put<uint32_t>(static_cast<uint32_t>(arr.elem_type));
            out.put<uint64_t>(arr.items.size());
            for (const auto& it : arr.items) {
                if (it.type != arr.elem_type)
                    throw error("metadata key '" + key + "': array element of type " +
                                std::string(value_type_name(it.type)) + " in an array of " +
                                std::string(value_type_name(arr.elem_type)));
                put_value(out, it, key);
            }
            return;
        }
    }
    throw error("metadata key '" + key + "': unknown value type");
}

// Checks that a value holds what its type says, so serialisation cannot silently truncate.
void check_value(const value& v, const std::string& key) {
    try {
        switch (v.type) {
            case value_type::u8: if (v.as_u64() > 0xff) throw error("does not fit in u8"); break;
            case value_type::u16: if (v.as_u64() > 0xffff) throw error("does not fit in u16"); break;
            case value_type::u32: if (v.as_u64() > 0xffffffffull) throw error("does not fit in u32"); break;
            case value_type::u64: v.as_u64(); break;
            case value_type::i8: { auto x = v.as_i64(); if (x < -128 || x > 127) throw error("does not fit in i8"); break; }
            case value_type::i16: { auto x = v.as_i64(); if (x < -32768 || x > 32767) throw error("does not fit in i16"); break; }
            case value_type::i32: { auto x = v.as_i64(); if (x < INT32_MIN || x > INT32_MAX) throw error("does not fit in i32"); break; }
            case value_type::i64: v.as_i64(); break;
            case value_type::f32: case value_type::f64: v.as_f64(); break;
            case value_type::boolean: v.as_bool(); break;
            case value_type::string: v.as_string(); break;
            case value_type::array:
                for (const auto& it : v.as_array().items) {
                    if (it.type != v.as_array().elem_type)
                        throw error("array element of type " + std::string(value_type_name(it.type)) +
                                    " in an array of " + std::string(value_type_name(v.as_array().elem_type)));
                    check_value(it, key);
                }
                break;
            default: throw error("unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
        }
    } catch (const error& e) {
        throw error("metadata key '" + key + "': " + e.what());
    }
}

uint64_t pad_to(uint64_t n, uint64_t alignment) { return (alignment - n % alignment) % alignment; }

struct file_closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

writer::writer() = default;

void writer::set(const std::string& key, value v) {
    if (key.empty()) throw error("metadata key must not be empty");
    if (key.size() > k_max_key_bytes) throw error("metadata key longer than 65535 bytes");
    check_value(v, key);
    if (key == "general.alignment") {
        if (v.type != value_type::u32) throw error("general.alignment must be a u32 value");
        const uint64_t a = v.as_u64();
        if (a == 0 || (a & (a - 1)) != 0)
            throw error("general.alignment " + std::to_string(a) + " is not a non-zero power of two");
        alignment_ = static_cast<uint32_t>(a);
    }
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    kv_.emplace_back(key, std::move(v));
}

void writer::set_alignment(uint32_t alignment) { set("general.alignment", value::make_u32(alignment)); }

size_t writer::check_tensor(const std::string& name, ggml_type type, const std::vector<int64_t>& ne) const {
    if (name.size() > k_max_tensor_name_bytes) throw error("tensor name longer than 65535 bytes");
    for (const auto& t : tensors_)
        if (t.name == name) throw error("duplicate tensor name '" + name + "'");
    const auto* tr = type_traits(static_cast<uint32_t>(type));
    if (!tr) throw error("tensor '" + name + "': unknown type " + std::to_string(static_cast<uint32_t>(type)));
    if (ne.empty() || ne.size() > static_cast<size_t>(k_max_dims))
        throw error("tensor '" + name + "': " + std::to_string(ne.size()) + " dimensions, must be 1..4");
    int64_t n = 1;
    for (int64_t d : ne) {
        if (d <= 0) throw error("tensor '" + name + "': dimension " + std::to_string(d) + " is not positive");
        if (__builtin_mul_overflow(n, d, &n)) throw error("tensor '" + name + "': element count overflows");
    }
    if (ne[0] % tr->block_size != 0)
        throw error("tensor '" + name + "': row length " + std::to_string(ne[0]) + " is not a multiple of the " +
                    std::string(tr->name) + " block size " + std::to_string(tr->block_size));
    return static_cast<size_t>(n / tr->block_size) * tr->type_size;
}

void writer::add_tensor(const std::string& name, ggml_type type, const std::vector<int64_t>& ne,
                        const void* data, size_t size_bytes) {
    const size_t expect = check_tensor(name, type, ne);
    if (size_bytes != expect)
        throw error("tensor '" + name + "': got " + std::to_string(size_bytes) + " bytes, its shape needs " +
                    std::to_string(expect));
    const auto* p = static_cast<const uint8_t*>(data);
    tensors_.push_back({name, type, ne, std::vector<uint8_t>(p, p + size_bytes), size_bytes, {}});
}

void writer::add_tensor(const std::string& name, ggml_type type, const std::vector<int64_t>& ne,
                        std::vector<uint8_t>&& data) {
    const size_t expect = check_tensor(name, type, ne);
    if (data.size() != expect)
        throw error("tensor '" + name + "': got " + std::to_string(data.size()) + " bytes, its shape needs " +
                    std::to_string(expect));
    tensors_.push_back({name, type, ne, std::move(data), expect, {}});
}

void writer::add_tensor_lazy(const std::string& name, ggml_type type, const std::vector<int64_t>& ne,
                             tensor_fill_fn fill) {
    if (!fill) throw error("tensor '" + name + "': no fill function");
    const size_t expect = check_tensor(name, type, ne);
    tensors_.push_back({name, type, ne, {}, expect, std::move(fill)});
}

std::vector<uint8_t> writer::header_bytes() const {
    std::vector<uint8_t> out;
    byte_sink s(out);
    s.put<uint32_t>(k_magic);
    s.put<uint32_t>(3);
    s.put<uint64_t>(tensors_.size());
    s.put<uint64_t>(kv_.size());
    for (const auto& [key, v] : kv_) {
        s.put_string(key);
        s.put<uint32_t>(static_cast<uint32_t>(v.type));
        put_value(s, v, key);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        s.put_string(t.name);
        s.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) s.put<uint64_t>(static_cast<uint64_t>(d));
        s.put<uint32_t>(static_cast<uint32_t>(t.type));
        s.put<uint64_t>(offset);
        offset += t.size_bytes + pad_to(t.size_bytes, alignment_);
    }
    // Only a data section needs aligning: a tensor-less (vocab-only) file ends right here, so a
    // huge general.alignment never turns into gigabytes of padding.
    if (!tensors_.empty()) out.resize(out.size() + pad_to(out.size(), alignment_), 0);
    return out;
}

std::vector<uint8_t> writer::to_bytes() const {
    std::vector<uint8_t> out = header_bytes();
    for (const auto& t : tensors_) {
        const size_t at = out.size();
        if (t.fill) {
            out.resize(at + t.size_bytes);
            t.fill(out.data() + at, t.size_bytes);
        } else {
            out.insert(out.end(), t.data.begin(), t.data.end());
        }
        out.resize(out.size() + pad_to(t.size_bytes, alignment_), 0);
    }
    return out;
}

void writer::write(const std::string& path) const {
    const std::string tmp = path + ".tmp";
    std::unique_ptr<std::FILE, file_closer> f(std::fopen(tmp.c_str(), "wb"));
    if (!f) throw error("cannot create '" + tmp + "': " + std::strerror(errno));
    auto put = [&](const uint8_t* p, size_t n) {
        if (n && std::fwrite(p, 1, n, f.get()) != n) throw error("cannot write '" + tmp + "': " + std::strerror(errno));
    };
    try {
        const std::vector<uint8_t> header = header_bytes();
        put(header.data(), header.size());
        const std::vector<uint8_t> zeros(std::min<uint64_t>(alignment_, 1 << 16), 0);
        auto put_zeros = [&](uint64_t n) {
            for (uint64_t k; n; n -= k) put(zeros.data(), k = std::min<uint64_t>(n, zeros.size()));
        };
        std::vector<uint8_t> scratch;
        for (const auto& t : tensors_) {
            if (t.fill) {
                scratch.assign(t.size_bytes, 0);  // one tensor at a time, buffer reused
                t.fill(scratch.data(), t.size_bytes);
                put(scratch.data(), scratch.size());
            } else {
                put(t.data.data(), t.data.size());
            }
            put_zeros(pad_to(t.size_bytes, alignment_));
        }
        if (std::fflush(f.get()) != 0) throw error("cannot write '" + tmp + "': " + std::strerror(errno));
        if (std::fclose(f.release()) != 0) throw error("cannot close '" + tmp + "': " + std::strerror(errno));
    } catch (...) {
        f.reset();
        std::remove(tmp.c_str());
        throw;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::remove(tmp.c_str());
        throw error("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
    }
}

}  // namespace edgellm::gguf
