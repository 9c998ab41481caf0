// libFuzzer target for the GGUF reader: parse arbitrary bytes, touch every tensor byte and
// metadata value, and check that a file we accept also survives a write + re-read.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gguf/gguf.h"
#include "gguf/gguf_summary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace edgellm;
    try {
        const auto f = gguf::file::from_memory(data, size);
        // Reading every tensor byte proves the views stay inside the buffer (ASan checks it).
        volatile uint8_t sink = 0;
        for (const auto& t : f.tensors())
            for (uint64_t i = 0; i < t.size_bytes; ++i) sink = sink ^ t.data[i];
        for (const auto& [key, v] : f.metadata()) (void)gguf::format_value(v, 4, 32);
        (void)gguf::summarize(f);
        // What we accept we can write, and what we write we accept.
        gguf::writer w;
        for (const auto& [key, v] : f.metadata()) w.set(key, v);
        for (const auto& t : f.tensors())
            w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.size_bytes);
        const auto bytes = w.to_bytes();
        const auto again = gguf::file::from_memory(bytes.data(), bytes.size());
        if (again.metadata().size() != f.metadata().size() || again.tensors().size() != f.tensors().size()) std::abort();
    } catch (const error&) {
        // Rejecting bad input with an edgellm::error is the expected outcome.
    }
    return 0;
}
