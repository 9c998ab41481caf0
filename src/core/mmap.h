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

// Anonymous zero-filled memory from the OS (RAII), with transparent huge pages requested: large
// weight buffers then cost fewer page faults to fill and fewer TLB misses to stream.
class anon_buffer {
public:
    anon_buffer() = default;
    // Throws edgellm::error naming the size when the OS refuses.
    explicit anon_buffer(size_t n_bytes);
    ~anon_buffer();
    anon_buffer(anon_buffer&& o) noexcept;
    anon_buffer& operator=(anon_buffer&& o) noexcept;
    anon_buffer(const anon_buffer&) = delete;
    anon_buffer& operator=(const anon_buffer&) = delete;

    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace edgellm
