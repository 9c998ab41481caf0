// Read-only memory mapping of a whole file (RAII). Model weights are used in place from it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace edgellm {

class mapped_file {
public:
    mapped_file() = default;
    // Maps `path` read-only; throws edgellm::error naming the path and the OS reason.
    explicit mapped_file(const std::string& path);
    ~mapped_file();
    mapped_file(mapped_file&& o) noexcept;
    mapped_file& operator=(mapped_file&& o) noexcept;
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }
    // Tells the kernel this process no longer needs the whole pages inside [p, p+n) of the
    // mapping (they leave its RSS; a later read faults them back in from the page cache).
    // Ranges outside the mapping are ignored.
    void drop_pages(const void* p, size_t n) const;

private:
    void release();
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    std::string path_;
};

}  // namespace edgellm
