// SHA-256 (OpenSSL's EVP, which the HTTPS client links anyway) for the model store's
// content addressing and the digest checks of downloads.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace edgellm::store {

class sha256 {
public:
    sha256();
    ~sha256();
    sha256(const sha256&) = delete;
    sha256& operator=(const sha256&) = delete;
    void update(const void* data, size_t n);
    void update(std::string_view s) { update(s.data(), s.size()); }
    std::string hex();  // finishes; 64 lowercase hex digits

private:
    struct state;
    std::unique_ptr<state> s_;
};

std::string sha256_hex(std::string_view data);
// Reads the whole file; throws edgellm::error naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& p);

}  // namespace edgellm::store
