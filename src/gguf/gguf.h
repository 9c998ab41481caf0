// GGUF v2/v3 reader (validating, memory-mapped, zero-copy tensor views) and writer.
// Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/mmap.h"
#include "quant/ggml_type.h"

namespace edgellm::gguf {

constexpr uint32_t k_magic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t k_default_alignment = 32;
constexpr int k_max_dims = 4;

enum class value_type : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view value_type_name(value_type t);

struct value;
// A GGUF array: every element has elem_type (nested arrays are allowed by the format).
struct array_value {
    value_type elem_type = value_type::u8;
    std::vector<value> items;
};

// One metadata value. Integers are widened to 64 bits and floats to double; `type` keeps the
// exact on-disk type so the writer round-trips byte-exactly.
struct value {
    value_type type = value_type::u8;
    std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<array_value>> data;

    static value make_u8(uint8_t v) { return {value_type::u8, uint64_t{v}}; }
    static value make_u16(uint16_t v) { return {value_type::u16, uint64_t{v}}; }
    static value make_u32(uint32_t v) { return {value_type::u32, uint64_t{v}}; }
    static value make_u64(uint64_t v) { return {value_type::u64, v}; }
    static value make_i8(int8_t v) { return {value_type::i8, int64_t{v}}; }
    static value make_i16(int16_t v) { return {value_type::i16, int64_t{v}}; }
    static value make_i32(int32_t v) { return {value_type::i32, int64_t{v}}; }
    static value make_i64(int64_t v) { return {value_type::i64, v}; }
    static value make_f32(float v) { return {value_type::f32, double{v}}; }
    static value make_f64(double v) { return {value_type::f64, v}; }
    static value make_bool(bool v) { return {value_type::boolean, v}; }
    static value make_string(std::string v) { return {value_type::string, std::move(v)}; }
    static value make_array(value_type elem_type, std::vector<value> items);

    bool is_integer() const;       // any of u8..i64
    bool is_float() const { return type == value_type::f32 || type == value_type::f64; }
    // Conversions; throw edgellm::error naming the type when the value is not convertible.
    uint64_t as_u64() const;       // unsigned or non-negative signed integer
    int64_t as_i64() const;        // any integer that fits
    double as_f64() const;         // float or integer
    bool as_bool() const;
    const std::string& as_string() const;
    const array_value& as_array() const;
};

// Limits the reader enforces beyond the format itself (a file breaking one is rejected).
constexpr int k_max_array_depth = 8;           // nesting of arrays inside arrays
constexpr uint64_t k_max_key_bytes = 65535;     // the spec's key length limit
constexpr uint64_t k_max_tensor_name_bytes = 65535;

struct tensor_info {
    std::string name;
    ggml_type type = ggml_type::f32;
    int n_dims = 0;
    int64_t ne[k_max_dims] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
    uint64_t offset = 0;                     // relative to the start of the data section
    uint64_t size_bytes = 0;
    const uint8_t* data = nullptr;           // points into the mapping (or caller's buffer)

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

// A parsed GGUF file. Everything has been validated by the time a file object exists:
// any defect raises format_error naming the field and the byte offset.
class file {
public:
    // Maps and parses a file from disk.
    static file open(const std::string& path);
    // Parses bytes owned by the caller (they must outlive the returned object).
    static file from_memory(const uint8_t* bytes, size_t size);

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
    uint64_t file_size() const { return size_; }
    const std::string& path() const { return path_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, value>>& metadata() const { return kv_; }
    const value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }
    // Typed getters; throw edgellm::error naming the key when missing or of the wrong type.
    // (Conversion failures are rethrown with the key in the message.)
    const value& get(std::string_view key) const;
    uint64_t get_u64(std::string_view key) const;
    int64_t get_i64(std::string_view key) const;
    double get_f64(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    const std::string& get_string(std::string_view key) const;
    const array_value& get_array(std::string_view key) const;
    // Optional variants: nullopt when the key is absent (still throw on a wrong type).
    std::optional<uint64_t> get_u64_opt(std::string_view key) const;
    std::optional<double> get_f64_opt(std::string_view key) const;
    std::optional<bool> get_bool_opt(std::string_view key) const;
    std::optional<std::string> get_string_opt(std::string_view key) const;

    // Drops the resident pages of [p, p+n) when the file is memory-mapped (see
    // mapped_file::drop_pages); a no-op for files parsed from memory.
    void drop_pages(const void* p, size_t n) const;

    // Tensors in file order.
    const std::vector<tensor_info>& tensors() const { return tensors_; }
    const tensor_info* find_tensor(std::string_view name) const;

private:
    void parse(const uint8_t* bytes, size_t size);

    std::shared_ptr<mapped_file> map_;
    std::string path_;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = k_default_alignment;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, value>> kv_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<tensor_info> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Fills `size_bytes` bytes at `dst` with a tensor's data when the writer streams it out.
using tensor_fill_fn = std::function<void(uint8_t* dst, size_t size_bytes)>;

// Builds a GGUF v3 file: metadata in insertion order, tensors aligned to general.alignment.
// Layout matches gguf-py's GGUFWriter (every tensor, the last included, is zero-padded to the
// alignment), so a file either produced is rewritten byte-exactly.
class writer {
public:
    writer();
    // Sets (or replaces, keeping the position) a metadata key. Setting general.alignment
    // (u32, a power of two) also changes the data alignment.
    void set(const std::string& key, value v);
    // Adds a tensor; `data` must hold row_size(type, ne[0]) * rows bytes and is copied.
    void add_tensor(const std::string& name, ggml_type type, const std::vector<int64_t>& ne,
                    const void* data, size_t size_bytes);
    // Same, taking ownership of the bytes (no copy).
    void add_tensor(const std::string& name, ggml_type type, const std::vector<int64_t>& ne,
                    std::vector<uint8_t>&& data);
    // Adds a tensor whose bytes are produced by `fill` only while write() streams the file, so
    // a multi-GB model never has to be held in memory at once.
    void add_tensor_lazy(const std::string& name, ggml_type type, const std::vector<int64_t>& ne,
                         tensor_fill_fn fill);
    // Sets the data alignment and records it as general.alignment (u32).
    void set_alignment(uint32_t alignment);
    uint32_t alignment() const { return alignment_; }
    size_t n_tensors() const { return tensors_.size(); }
    // Serialises everything; write() streams it to a file (via a temporary file renamed into
    // place) and throws edgellm::error on I/O failure.
    std::vector<uint8_t> to_bytes() const;
    void write(const std::string& path) const;

private:
    struct pending_tensor {
        std::string name;
        ggml_type type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
        size_t size_bytes = 0;
        tensor_fill_fn fill;  // set for lazy tensors (then `data` is empty)
    };
    size_t check_tensor(const std::string& name, ggml_type type, const std::vector<int64_t>& ne) const;
    std::vector<uint8_t> header_bytes() const;
    uint32_t alignment_ = k_default_alignment;
    std::vector<std::pair<std::string, value>> kv_;
    std::vector<pending_tensor> tensors_;
};

}  // namespace edgellm::gguf
