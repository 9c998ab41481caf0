// Microbenchmark of the Q4_0 x8 packed gemms (AVX2, AVX-512 VNNI) at TinyLlama's FFN shape for
// the token counts a decode batch has (1, 2, 4, 8) and a prefill chunk (64), 1 and 2 threads.
// The figure that matters for continuous batching is time(4 tokens) / time(1 token): the closer
// to 1, the more of a 4-stream batch is free (the server's 4-stream vs 1-stream ratio).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/packed.h"
#include "quant/quant.h"

namespace {
using edgellm::ggml_type;
namespace cpu = edgellm::kernels::cpu;

std::vector<uint8_t> weights(int64_t n_rows, int64_t n_cols) {
    const size_t rb = edgellm::row_size(ggml_type::q4_0, n_cols);
    std::vector<uint8_t> w(rb * size_t(n_rows));
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> src(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        for (auto& v : src) v = dist(rng);
        edgellm::quantize_row(ggml_type::q4_0, src.data(), w.data() + size_t(r) * rb, n_cols);
    }
    return w;
}

// isa: 1 = packed AVX2, 2 = packed AVX-512 VNNI.
void bm(benchmark::State& state, int isa, int64_t n_rows, int64_t n_cols) {
    const int64_t n_tokens = state.range(0);
    const int n_threads = int(state.range(1));
    const cpu::isa_ops* ops = isa == 2 ? cpu::avx512_ops() : cpu::avx2_ops();
    if (!ops) {
        state.SkipWithError("this CPU lacks the ISA");
        return;
    }
    const auto w = weights(n_rows, n_cols);
    std::vector<float> x(size_t(n_cols * n_tokens)), y(size_t(n_rows * n_tokens));
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (auto& v : x) v = dist(rng);
    const auto& l = cpu::packed_q4_0_layout();
    std::vector<uint8_t> packed(cpu::packed_bytes(l, n_rows, n_cols));
    cpu::pack_matrix(l, w.data(), n_rows, n_cols, packed.data(), 1);
    const auto gemm = isa == 2 ? cpu::packed_q4_0_gemm_avx512 : cpu::packed_q4_0_gemm_avx2;
    for (auto _ : state) {
        cpu::mul_mat_packed(*ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), n_threads);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    const double iters = double(state.iterations());
    state.counters["weight_GB/s"] = benchmark::Counter(double(w.size()) * iters / 1e9, benchmark::Counter::kIsRate);
    state.counters["GMAC/s"] =
        benchmark::Counter(double(n_rows * n_cols * n_tokens) * iters / 1e9, benchmark::Counter::kIsRate);
}

int register_all() {
    const std::pair<int64_t, int64_t> shapes[] = {{5632, 2048}, {32000, 2048}};
    const char* names[] = {"", "packed_avx2", "packed_avx512"};
    for (auto [r, c] : shapes)
        for (int isa = 1; isa < 3; ++isa) {
            const std::string name =
                std::string("q4_0/") + names[isa] + "/" + std::to_string(r) + "x" + std::to_string(c);
            benchmark::RegisterBenchmark(name.c_str(), bm, isa, r, c)
                ->ArgNames({"tokens", "threads"})
                ->ArgsProduct({{1, 2, 4, 8, 64}, {1, 2}})
                ->Unit(benchmark::kMicrosecond)
                ->UseRealTime();
        }
    return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
