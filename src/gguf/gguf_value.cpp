// GGUF metadata values: type names, construction of arrays and checked conversions.
#include <limits>
#include <string>

#include "gguf/gguf.h"

namespace edgellm::gguf {

std::string_view value_type_name(value_type t) {
    switch (t) {
        case value_type::u8: return "u8";
        case value_type::i8: return "i8";
        case value_type::u16: return "u16";
        case value_type::i16: return "i16";
        case value_type::u32: return "u32";
        case value_type::i32: return "i32";
        case value_type::f32: return "f32";
        case value_type::boolean: return "bool";
        case value_type::string: return "string";
        case value_type::array: return "array";
        case value_type::u64: return "u64";
        case value_type::i64: return "i64";
        case value_type::f64: return "f64";
    }
    return "unknown";
}

value value::make_array(value_type elem_type, std::vector<value> items) {
    for (const auto& it : items)
        if (it.type != elem_type)
            throw error("array element of type " + std::string(value_type_name(it.type)) +
                        " in an array of " + std::string(value_type_name(elem_type)));
    auto arr = std::make_shared<array_value>();
    arr->elem_type = elem_type;
    arr->items = std::move(items);
    return {value_type::array, std::move(arr)};
}

bool value::is_integer() const {
    switch (type) {
        case value_type::u8: case value_type::i8: case value_type::u16: case value_type::i16:
        case value_type::u32: case value_type::i32: case value_type::u64: case value_type::i64:
            return true;
        default:
            return false;
    }
}

namespace {
[[noreturn]] void bad_conversion(value_type from, const char* to) {
    throw error("metadata value of type " + std::string(value_type_name(from)) + " is not " + to);
}
}  // namespace

uint64_t value::as_u64() const {
    if (const auto* u = std::get_if<uint64_t>(&data); u && is_integer()) return *u;
    if (const auto* i = std::get_if<int64_t>(&data); i && is_integer()) {
        if (*i < 0) throw error("metadata value " + std::to_string(*i) + " is negative, expected an unsigned integer");
        return static_cast<uint64_t>(*i);
    }
    bad_conversion(type, "an integer");
}

int64_t value::as_i64() const {
    if (const auto* i = std::get_if<int64_t>(&data); i && is_integer()) return *i;
    if (const auto* u = std::get_if<uint64_t>(&data); u && is_integer()) {
        if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw error("metadata value " + std::to_string(*u) + " does not fit in int64");
        return static_cast<int64_t>(*u);
    }
    bad_conversion(type, "an integer");
}

double value::as_f64() const {
    if (const auto* d = std::get_if<double>(&data); d && is_float()) return *d;
    if (is_integer()) {
        if (const auto* u = std::get_if<uint64_t>(&data)) return static_cast<double>(*u);
        return static_cast<double>(std::get<int64_t>(data));
    }
    bad_conversion(type, "a number");
}

bool value::as_bool() const {
    if (type == value_type::boolean)
        if (const auto* b = std::get_if<bool>(&data)) return *b;
    bad_conversion(type, "a bool");
}

const std::string& value::as_string() const {
    if (type == value_type::string)
        if (const auto* s = std::get_if<std::string>(&data)) return *s;
    bad_conversion(type, "a string");
}

const array_value& value::as_array() const {
    if (type == value_type::array)
        if (const auto* a = std::get_if<std::shared_ptr<array_value>>(&data); a && *a) return **a;
    bad_conversion(type, "an array");
}

}  // namespace edgellm::gguf
