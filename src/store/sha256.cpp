#include "store/sha256.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <cstdio>
#include <vector>

#include "core/error.h"

namespace edgellm::store {

struct sha256::state {
    EVP_MD_CTX* ctx = nullptr;
};

sha256::sha256() : s_(std::make_unique<state>()) {
    s_->ctx = EVP_MD_CTX_new();
    if (!s_->ctx || EVP_DigestInit_ex(s_->ctx, EVP_sha256(), nullptr) != 1) throw error("SHA-256: OpenSSL init failed");
}

sha256::~sha256() { EVP_MD_CTX_free(s_->ctx); }

void sha256::update(const void* data, size_t n) {
    if (n && EVP_DigestUpdate(s_->ctx, data, n) != 1) throw error("SHA-256: OpenSSL update failed");
}

std::string sha256::hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(s_->ctx, md, &len) != 1) throw error("SHA-256: OpenSSL final failed");
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
}

std::string sha256_hex(std::string_view data) {
    sha256 h;
    h.update(data);
    return h.hex();
}

std::string sha256_file(const std::filesystem::path& p) {
    std::FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) throw error(fmt::format("cannot read {}", p.string()));
    sha256 h;
    std::vector<char> buf(1 << 20);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) throw error(fmt::format("error while reading {}", p.string()));
    return h.hex();
}

}  // namespace edgellm::store
