// GGUF v2/v3 reader: parses untrusted bytes with a bounds-checked cursor and validates every
// count, length, type, shape and offset before anything is allocated or used.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "gguf/gguf.h"

namespace edgellm::gguf {
namespace {

// Smallest on-disk size of one element of each value type; used to bound counts by the bytes
// left so that a forged count can never trigger a huge allocation.
uint64_t min_encoded_size(value_type t) {
    switch (t) {
        case value_type::u8: case value_type::i8: case value_type::boolean: return 1;
        case value_type::u16: case value_type::i16: return 2;
        case value_type::u32: case value_type::i32: case value_type::f32: return 4;
        case value_type::u64: case value_type::i64: case value_type::f64: return 8;
        case value_type::string: return 8;   // length prefix
        case value_type::array: return 12;   // element type + count
    }
    return 1;
}

bool known_value_type(uint32_t raw) { return raw <= static_cast<uint32_t>(value_type::f64); }

std::string quoted(std::string_view s) {
    std::string out = "'";
    for (char c : s.substr(0, 64)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
    if (s.size() > 64) out += "...";
    return out + "'";
}

// Little-endian cursor over [bytes, bytes + size); every read checks the bytes left first.
class cursor {
public:
    cursor(const uint8_t* bytes, size_t size) : p_(bytes), size_(size) {}

    uint64_t pos() const { return pos_; }
    uint64_t left() const { return size_ - pos_; }

    void need(uint64_t n, const std::string& field) const {
        if (n > left())
            throw format_error(field, pos_,
                               "needs " + std::to_string(n) + " bytes but only " + std::to_string(left()) +
                                   " remain (truncated file)");
    }

    template <typename T>
    T read(const std::string& field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::string read_string(const std::string& field, uint64_t max_bytes) {
        const uint64_t at = pos_;
        const auto n = read<uint64_t>(field + " length");
        if (n > left())
            throw format_error(field, at,
                               "string length " + std::to_string(n) + " exceeds the " + std::to_string(left()) +
                                   " bytes left in the file");
        if (n > max_bytes)
            throw format_error(field, at,
                               "string length " + std::to_string(n) + " exceeds the limit of " +
                                   std::to_string(max_bytes) + " bytes");
        std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
        pos_ += n;
        return s;
    }

private:
    const uint8_t* p_;
    uint64_t size_;
    uint64_t pos_ = 0;
};

value read_value(cursor& c, value_type t, const std::string& field, int depth) {
    switch (t) {
        case value_type::u8: return value::make_u8(c.read<uint8_t>(field));
        case value_type::i8: return value::make_i8(c.read<int8_t>(field));
        case value_type::u16: return value::make_u16(c.read<uint16_t>(field));
        case value_type::i16: return value::make_i16(c.read<int16_t>(field));
        case value_type::u32: return value::make_u32(c.read<uint32_t>(field));
        case value_type::i32: return value::make_i32(c.read<int32_t>(field));
        case value_type::u64: return value::make_u64(c.read<uint64_t>(field));
        case value_type::i64: return value::make_i64(c.read<int64_t>(field));
        case value_type::f32: return value::make_f32(c.read<float>(field));
        case value_type::f64: return value::make_f64(c.read<double>(field));
        case value_type::boolean: {
            const uint64_t at = c.pos();
            const auto b = c.read<uint8_t>(field);
            if (b > 1) throw format_error(field, at, "bool value " + std::to_string(b) + " is neither 0 nor 1");
            return value::make_bool(b != 0);
        }
        case value_type::string: return value::make_string(c.read_string(field, std::numeric_limits<uint64_t>::max()));
        case value_type::array: {
            if (depth >= k_max_array_depth)
                throw format_error(field, c.pos(),
                                   "arrays nested deeper than " + std::to_string(k_max_array_depth) + " levels");
            const uint64_t type_at = c.pos();
            const auto raw_elem = c.read<uint32_t>(field + " element type");
            if (!known_value_type(raw_elem))
                throw format_error(field, type_at, "unknown array element type " + std::to_string(raw_elem));
            const auto elem = static_cast<value_type>(raw_elem);
            const uint64_t count_at = c.pos();
            const auto n = c.read<uint64_t>(field + " array length");
            if (n > c.left() / min_encoded_size(elem))
                throw format_error(field, count_at,
                                   "array length " + std::to_string(n) + " of " + std::string(value_type_name(elem)) +
                                       " cannot fit in the " + std::to_string(c.left()) + " bytes left");
            auto arr = std::make_shared<array_value>();
            arr->elem_type = elem;
            arr->items.reserve(static_cast<size_t>(n));
            for (uint64_t i = 0; i < n; ++i) arr->items.push_back(read_value(c, elem, field, depth + 1));
            return {value_type::array, std::move(arr)};
        }
    }
    throw format_error(field, c.pos(), "unknown value type");
}

}  // namespace

file file::open(const std::string& path) {
    file f;
    f.map_ = std::make_shared<mapped_file>(path);
    f.path_ = path;
    try {
        f.parse(f.map_->data(), f.map_->size());
    } catch (const format_error& e) {
        // Keep the field and offset but say which file was bad: the what() text ends with the
        // " (field ...)" suffix that the rethrown error appends again.
        const std::string what = e.what();
        const std::string message = what.substr(0, what.rfind(" (field '"));
        throw format_error(e.field(), e.offset(), path + ": " + message);
    }
    return f;
}

file file::from_memory(const uint8_t* bytes, size_t size) {
    file f;
    f.parse(bytes, size);
    return f;
}

void file::parse(const uint8_t* bytes, size_t size) {
    static const uint8_t k_empty = 0;
    if (!bytes) bytes = &k_empty;  // an empty mapping has no pointer; the cursor never reads it
    size_ = size;
    cursor c(bytes, size);

    const auto magic = c.read<uint32_t>("magic");
    if (magic != k_magic) {
        std::string got;
        for (int i = 0; i < 4; ++i) {
            const char ch = static_cast<char>((magic >> (8 * i)) & 0xff);
            got += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
        }
        throw format_error("magic", 0, "not a GGUF file: magic is " + quoted(got) + ", expected 'GGUF'");
    }
    const auto version = c.read<uint32_t>("version");
    if (version == 1)
        throw format_error("version", 4, "GGUF version 1 is not supported (only versions 2 and 3); re-convert the model");
    if (version != 2 && version != 3) {
        // A big-endian file shows its version byte-swapped.
        const uint32_t swapped = __builtin_bswap32(version);
        if (swapped == 2 || swapped == 3)
            throw format_error("version", 4, "big-endian GGUF files are not supported");
        throw format_error("version", 4, "unsupported GGUF version " + std::to_string(version) + " (expected 2 or 3)");
    }
    version_ = version;

    const uint64_t n_tensors_at = c.pos();
    const auto n_tensors = c.read<uint64_t>("n_tensors");
    const uint64_t n_kv_at = c.pos();
    const auto n_kv = c.read<uint64_t>("n_kv");
    // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
    // least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    constexpr uint64_t k_min_kv_bytes = 13, k_min_tensor_info_bytes = 32;
    if (n_kv > c.left() / k_min_kv_bytes)
        throw format_error("n_kv", n_kv_at,
                           "metadata count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(c.left()) +
                               " bytes left");
    if (n_tensors > (c.left() - n_kv * k_min_kv_bytes) / k_min_tensor_info_bytes)
        throw format_error("n_tensors", n_tensors_at,
                           "tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                               std::to_string(c.left()) + " bytes left");

    kv_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        const uint64_t key_at = c.pos();
        const std::string key_field = "metadata[" + std::to_string(i) + "].key";
        std::string key = c.read_string(key_field, k_max_key_bytes);
        if (key.empty()) throw format_error(key_field, key_at, "empty metadata key");
        if (kv_index_.count(key)) throw format_error(key, key_at, "duplicate metadata key " + quoted(key));
        const uint64_t type_at = c.pos();
        const auto raw_type = c.read<uint32_t>(key + " type");
        if (!known_value_type(raw_type))
            throw format_error(key, type_at, "unknown value type " + std::to_string(raw_type) + " for key " + quoted(key));
        const uint64_t value_at = c.pos();
        value v = read_value(c, static_cast<value_type>(raw_type), key, 0);
        if (key == "general.alignment") {
            if (v.type != value_type::u32)
                throw format_error(key, value_at,
                                   "general.alignment must be u32, got " + std::string(value_type_name(v.type)));
            const uint64_t a = v.as_u64();
            if (a == 0 || (a & (a - 1)) != 0)
                throw format_error(key, value_at,
                                   "general.alignment " + std::to_string(a) + " is not a non-zero power of two");
            alignment_ = static_cast<uint32_t>(a);
        }
        kv_index_.emplace(key, kv_.size());
        kv_.emplace_back(std::move(key), std::move(v));
    }

    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        tensor_info t;
        const uint64_t name_at = c.pos();
        const std::string idx_field = "tensor[" + std::to_string(i) + "]";
        t.name = c.read_string(idx_field + ".name", k_max_tensor_name_bytes);
        if (tensor_index_.count(t.name))
            throw format_error(idx_field + ".name", name_at, "duplicate tensor name " + quoted(t.name));
        const std::string f = "tensor " + quoted(t.name);
        const uint64_t dims_at = c.pos();
        const auto n_dims = c.read<uint32_t>(f + " n_dims");
        if (n_dims == 0 || n_dims > static_cast<uint32_t>(k_max_dims))
            throw format_error(f + " n_dims", dims_at,
                               "n_dims is " + std::to_string(n_dims) + ", must be 1.." + std::to_string(k_max_dims));
        t.n_dims = static_cast<int>(n_dims);
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t dim_at = c.pos();
            const std::string df = f + " ne[" + std::to_string(d) + "]";
            const auto ne = c.read<uint64_t>(df);
            if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw format_error(df, dim_at, "dimension " + std::to_string(static_cast<int64_t>(ne)) + " is not positive");
            t.ne[d] = static_cast<int64_t>(ne);
            if (__builtin_mul_overflow(n_elements, t.ne[d], &n_elements))
                throw format_error(df, dim_at, "element count overflows int64");
        }
        const uint64_t type_at = c.pos();
        const auto raw_type = c.read<uint32_t>(f + " type");
        const auto* tr = type_traits(raw_type);
        if (!tr) throw format_error(f + " type", type_at, "unknown tensor type " + std::to_string(raw_type));
        t.type = tr->type;
        if (t.ne[0] % tr->block_size != 0)
            throw format_error(f + " ne[0]", dims_at + 4,
                               "row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                                   std::string(tr->name) + " block size " + std::to_string(tr->block_size));
        // n_elements fits in int64, so blocks * type_size can only overflow for huge tensors.
        const uint64_t n_blocks = static_cast<uint64_t>(n_elements / tr->block_size);
        if (__builtin_mul_overflow(n_blocks, static_cast<uint64_t>(tr->type_size), &t.size_bytes))
            throw format_error(f + " type", type_at, "tensor byte size overflows");
        t.offset = c.read<uint64_t>(f + " offset");
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const uint64_t infos_end = c.pos();
    data_offset_ = infos_end + (alignment_ - infos_end % alignment_) % alignment_;
    if (tensors_.empty()) return;  // vocab-only files may end without the padding
    if (data_offset_ > size)
        throw format_error("data section", infos_end,
                           "data section would start at " + std::to_string(data_offset_) + ", past the end of the " +
                               std::to_string(size) + "-byte file");
    const uint64_t data_bytes = size - data_offset_;
    for (auto& t : tensors_) {
        const std::string f = "tensor " + quoted(t.name) + " offset";
        if (t.offset % alignment_ != 0)
            throw format_error(f, data_offset_,
                               "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                   std::to_string(alignment_));
        if (t.offset > data_bytes || t.size_bytes > data_bytes - t.offset)
            throw format_error(f, data_offset_,
                               "tensor data [" + std::to_string(t.offset) + ", +" + std::to_string(t.size_bytes) +
                                   ") runs past the end of the data section (" + std::to_string(data_bytes) + " bytes)");
        t.data = bytes + data_offset_ + t.offset;
    }
    // Tensors must not share bytes: a writer that produced overlapping views is broken.
    std::vector<size_t> order(tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const auto& prev = tensors_[order[k - 1]];
        const auto& cur = tensors_[order[k]];
        if (prev.offset + prev.size_bytes > cur.offset)
            throw format_error("tensor " + quoted(cur.name) + " offset", data_offset_,
                               "tensor data overlaps tensor " + quoted(prev.name));
    }
}

const value* file::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const value& file::get(std::string_view key) const {
    const value* v = find(key);
    if (!v) throw error("metadata key '" + std::string(key) + "' is missing");
    return *v;
}

namespace {
template <typename F>
auto with_key(std::string_view key, F&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const format_error&) {
        throw;
    } catch (const error& e) {
        throw error("metadata key '" + std::string(key) + "': " + e.what());
    }
}
}  // namespace

uint64_t file::get_u64(std::string_view key) const { return with_key(key, [&] { return get(key).as_u64(); }); }
int64_t file::get_i64(std::string_view key) const { return with_key(key, [&] { return get(key).as_i64(); }); }
double file::get_f64(std::string_view key) const { return with_key(key, [&] { return get(key).as_f64(); }); }
bool file::get_bool(std::string_view key) const { return with_key(key, [&] { return get(key).as_bool(); }); }
const std::string& file::get_string(std::string_view key) const {
    return with_key(key, [&]() -> const std::string& { return get(key).as_string(); });
}
const array_value& file::get_array(std::string_view key) const {
    return with_key(key, [&]() -> const array_value& { return get(key).as_array(); });
}

std::optional<uint64_t> file::get_u64_opt(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_u64(key);
}
std::optional<double> file::get_f64_opt(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_f64(key);
}
std::optional<bool> file::get_bool_opt(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_bool(key);
}
std::optional<std::string> file::get_string_opt(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_string(key);
}

void file::drop_pages(const void* p, size_t n) const {
    if (map_) map_->drop_pages(p, n);
}

const tensor_info* file::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace edgellm::gguf
