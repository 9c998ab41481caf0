// Token tiling shared by the packed gemms: a gemm templated on its tile width T (tokens per pass
// over the weights) runs over n_tokens activation rows as tiles of MaxT, then one of the
// remainder. Header-only and ISA-neutral; include from any *_avx2 / *_avx512 / *_neon file.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

namespace edgellm::kernels::cpu {

// Calls f(std::integral_constant<int, n>{}) for the runtime n in [1, N].
template <int N, typename F>
inline void with_tile_width(int n, F&& f) {
    if constexpr (N <= 1) {
        f(std::integral_constant<int, 1>{});
    } else if (n >= N) {
        f(std::integral_constant<int, N>{});
    } else {
        with_tile_width<N - 1>(n, f);
    }
}

// For each tile of up to MaxT tokens: run(width, a, y_tile) with a[i] the activation row of
// token i of the tile (Block*: the prepared activation blocks) and y_tile its output rows.
template <int MaxT, typename Block, typename Run>
inline void for_each_token_tile(const void* act, size_t act_stride, int64_t n_tokens, float* y, size_t y_stride,
                                Run&& run) {
    const auto* ab = static_cast<const uint8_t*>(act);
    const Block* a[MaxT];
    for (int64_t t = 0; t < n_tokens; t += MaxT) {
        const int n = int(std::min<int64_t>(MaxT, n_tokens - t));
        for (int i = 0; i < n; ++i) a[i] = reinterpret_cast<const Block*>(ab + size_t(t + i) * act_stride);
        float* yt = y + size_t(t) * y_stride;
        with_tile_width<MaxT>(n, [&](auto width) { run(width, a, yt); });
    }
}

// Per-thread scratch of at least `bytes` bytes, 64-byte aligned, grown on demand and kept for the
// thread's life (the prefill gemms decode their rows into it once per call); null if out of memory.
inline uint8_t* packed_decode_scratch(size_t bytes) {
    struct buf {
        uint8_t* p = nullptr;
        size_t n = 0;
        ~buf() { std::free(p); }
    };
    thread_local buf b;
    if (b.n < bytes) {
        std::free(b.p);
        b.n = (bytes + 63) / 64 * 64;
        b.p = static_cast<uint8_t*>(std::aligned_alloc(64, b.n));
        if (!b.p) b.n = 0;
    }
    return b.p;
}

}  // namespace edgellm::kernels::cpu
