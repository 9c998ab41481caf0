// Error types shared by every layer. Parsers of untrusted bytes throw format_error carrying
// the byte offset and the field that is wrong; public entry points turn errors into messages.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace edgellm {

// Base class of every error edgellm raises on purpose.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Bad input in a file format (GGUF, JSON, ...): names the field and the byte offset.
class format_error : public error {
public:
    format_error(std::string field, uint64_t offset, const std::string& what)
        : error(what + " (field '" + field + "' at byte offset " + std::to_string(offset) + ")"),
          field_(std::move(field)),
          offset_(offset) {}
    const std::string& field() const { return field_; }
    uint64_t offset() const { return offset_; }

private:
    std::string field_;
    uint64_t offset_;
};

// A request the user made that cannot be honoured (bad flag value, model too large, ...).
class usage_error : public error {
public:
    using error::error;
};

}  // namespace edgellm
