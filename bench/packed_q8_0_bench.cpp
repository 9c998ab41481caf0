// Microbenchmarks of the Q8_0 x8 packed gemms (packed_q8_0_*.cpp) against the plain per-row
// product (kernels::mul_mat) on the same matrix, 1 thread: decode (1 token) in weight GB/s and
// prefill (64 tokens) in GMAC/s. The packed runs go through the packed driver with each ISA's gemm
// directly, so they work before the layout is wired into the registry.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/packed_q8_0.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

namespace {
using edgellm::ggml_type;
namespace cpu = edgellm::kernels::cpu;
constexpr ggml_type k_type = ggml_type::q8_0;

// A [n_rows][n_cols] Q8_0 matrix quantized from random normal floats.
std::vector<uint8_t> weights(int64_t n_rows, int64_t n_cols) {
    const size_t rb = edgellm::row_size(k_type, n_cols);
    std::vector<uint8_t> w(rb * size_t(n_rows));
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> src(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        for (auto& v : src) v = dist(rng);
        edgellm::quantize_row(k_type, src.data(), w.data() + size_t(r) * rb, n_cols);
    }
    return w;
}

void set_counters(benchmark::State& state, size_t weight_bytes, int64_t n_macs) {
    const double iters = double(state.iterations());
    state.counters["weight_GB/s"] = benchmark::Counter(double(weight_bytes) * iters / 1e9, benchmark::Counter::kIsRate);
    state.counters["GMAC/s"] = benchmark::Counter(double(n_macs) * iters / 1e9, benchmark::Counter::kIsRate);
}

// isa: 0 = plain mul_mat (the dispatcher's best per-row kernels), 1 = packed AVX2, 2 = packed AVX-512.
void bm(benchmark::State& state, int isa, int64_t n_rows, int64_t n_cols) {
    const int64_t n_tokens = state.range(0);
    const auto w = weights(n_rows, n_cols);
    std::vector<float> x(size_t(n_cols * n_tokens)), y(size_t(n_rows * n_tokens));
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (auto& v : x) v = dist(rng);
    const cpu::isa_ops* ops = isa == 2 ? cpu::avx512_ops() : cpu::avx2_ops();
    if (isa != 0 && !ops) {
        state.SkipWithError("this CPU lacks the ISA");
        return;
    }
    const auto& l = cpu::packed_q8_0_layout();
    std::vector<uint8_t> packed;
    if (isa != 0) {
        packed.resize(cpu::packed_bytes(l, n_rows, n_cols));
        cpu::pack_matrix(l, w.data(), n_rows, n_cols, packed.data(), 1);
    }
    const auto gemm = isa == 2 ? cpu::packed_q8_0_gemm_avx512 : cpu::packed_q8_0_gemm_avx2;
    for (auto _ : state) {
        if (isa == 0)
            edgellm::kernels::mul_mat(k_type, w.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 1);
        else
            cpu::mul_mat_packed(*ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 1);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    set_counters(state, w.size(), n_rows * n_cols * n_tokens);
}

int register_all() {
    const std::pair<int64_t, int64_t> shapes[] = {{1024, 1024}, {2048, 2048}, {5632, 2048}};
    const char* names[] = {"plain", "packed_avx2", "packed_avx512"};
    for (auto [r, c] : shapes)
        for (int isa = 0; isa < 3; ++isa) {
            const std::string name = std::string("q8_0/") + names[isa] + "/" + std::to_string(r) + "x" + std::to_string(c);
            benchmark::RegisterBenchmark(name.c_str(), bm, isa, r, c)->ArgName("tokens")->Arg(1)->Arg(64)->Unit(benchmark::kMicrosecond);
        }
    return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
