// Microbenchmark of the Q6_K x8 packed gemms (AVX2, AVX-512 VNNI) against the plain per-row Q6_K
// dot of the same ISA table, 1 thread, decode (1 token, weight GB/s) and prefill (64 tokens, GMAC/s).
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/packed_q6_k.h"
#include "quant/quant.h"

namespace {
using edgellm::ggml_type;
namespace cpu = edgellm::kernels::cpu;

// 64 distinct quantized rows repeated: timing does not depend on the values.
std::vector<uint8_t> weights(int64_t n_rows, int64_t n_cols) {
    const size_t rb = edgellm::row_size(ggml_type::q6_k, n_cols);
    std::vector<uint8_t> w(rb * size_t(n_rows));
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> src(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        if (r < 64) {
            for (auto& v : src) v = dist(rng);
            edgellm::quantize_row(ggml_type::q6_k, src.data(), w.data() + size_t(r) * rb, n_cols);
        } else {
            std::memcpy(w.data() + size_t(r) * rb, w.data() + size_t(r % 64) * rb, rb);
        }
    }
    return w;
}

void bm(benchmark::State& state, const cpu::isa_ops* ops, cpu::packed_gemm_fn gemm, int64_t n_rows, int64_t n_cols) {
    if (!ops) {
        state.SkipWithError("ISA not available on this CPU");
        return;
    }
    const int64_t n_tokens = state.range(0);
    const auto w = weights(n_rows, n_cols);
    const auto& l = cpu::packed_q6_k_layout();
    std::vector<uint8_t> packed;
    if (gemm) {
        packed.resize(cpu::packed_bytes(l, n_rows, n_cols));
        cpu::pack_matrix(l, w.data(), n_rows, n_cols, packed.data(), 1);
    }
    std::vector<float> x(size_t(n_cols * n_tokens)), y(size_t(n_rows * n_tokens));
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (auto& v : x) v = dist(rng);
    for (auto _ : state) {
        if (gemm)
            cpu::mul_mat_packed(*ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 1);
        else
            cpu::mul_mat(*ops, ggml_type::q6_k, w.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), 1);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    const double iters = double(state.iterations());
    state.counters["weight_GB/s"] = benchmark::Counter(double(w.size()) * iters / 1e9, benchmark::Counter::kIsRate);
    state.counters["GMAC/s"] = benchmark::Counter(double(n_rows * n_cols * n_tokens) * iters / 1e9, benchmark::Counter::kIsRate);
}

int register_all() {
    struct shape {
        const char* name;
        int64_t n_rows, n_cols;
    };
    // 512x2048 (860 KB) stays in L2: its decode rate is the compute bound, the others the memory bound.
    const shape shapes[] = {{"512x2048", 512, 2048}, {"2048x2048", 2048, 2048}, {"5632x2048", 5632, 2048}};
    struct variant {
        const char* name;
        const cpu::isa_ops* ops;
        cpu::packed_gemm_fn gemm;
    };
    const variant variants[] = {{"plain/avx2", cpu::avx2_ops(), nullptr},
                                {"packed/avx2", cpu::avx2_ops(), cpu::packed_q6_k_gemm_avx2},
                                {"plain/avx512", cpu::avx512_ops(), nullptr},
                                {"packed/avx512", cpu::avx512_ops(), cpu::packed_q6_k_gemm_avx512}};
    for (const auto& v : variants)
        for (const auto& s : shapes) {
            const std::string name = std::string("q6_k/") + v.name + "/" + s.name;
            benchmark::RegisterBenchmark(name.c_str(), bm, v.ops, v.gemm, s.n_rows, s.n_cols)
                ->ArgName("tokens")
                ->Arg(1)
                ->Arg(64)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
        }
    return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
