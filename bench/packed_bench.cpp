// Microbenchmark of every x8 packed layout's gemm (packed.h) against the plain per-row product of
// the same ISA table for that type: 1 and 2 threads, decode (1 token), a 16-token batch (the
// smallest that takes the AVX-512 two-group gemms of Q4_K / Q5_K / Q6_K) and prefill (64 tokens),
// with weight GB/s and GMAC/s counters (real time: with 2 threads, CPU time counts the main thread
// only). Types without a layout or an ISA without a gemm are skipped.
//   build/bin/packed_bench --benchmark_filter='q5_0/.*2048x2048' --benchmark_min_time=0.3
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/packed.h"
#include "quant/quant.h"

namespace {
using edgellm::ggml_type;
namespace cpu = edgellm::kernels::cpu;

// 64 distinct quantized rows repeated: timing does not depend on the values.
std::vector<uint8_t> weights(ggml_type t, int64_t n_rows, int64_t n_cols) {
    const size_t rb = edgellm::row_size(t, n_cols);
    std::vector<uint8_t> w(rb * size_t(n_rows));
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> src(static_cast<size_t>(n_cols));
    for (int64_t r = 0; r < n_rows; ++r) {
        if (r < 64) {
            for (auto& v : src) v = dist(rng);
            edgellm::quantize_row(t, src.data(), w.data() + size_t(r) * rb, n_cols);
        } else {
            std::memcpy(w.data() + size_t(r) * rb, w.data() + size_t(r % 64) * rb, rb);
        }
    }
    return w;
}

void bm(benchmark::State& state, ggml_type t, const cpu::isa_ops* ops, bool packed_path, int64_t n_rows, int64_t n_cols) {
    const int64_t n_tokens = state.range(0);
    const int n_threads = int(state.range(1));
    const auto w = weights(t, n_rows, n_cols);
    const auto& l = *cpu::packed_layout_for(t);
    const cpu::packed_gemm_fn gemm = packed_path ? ops->packed_gemm_for(t) : nullptr;
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
            cpu::mul_mat_packed(*ops, l, gemm, packed.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), n_threads);
        else
            cpu::mul_mat(*ops, t, w.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), n_threads);
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
    // 32000x4096 is well past this VM's 32 MiB L3 at every type (Q2_K: 84 MB): decode from DRAM.
    const shape shapes[] = {{"2048x2048", 2048, 2048}, {"5632x2048", 5632, 2048}, {"32000x4096", 32000, 4096}};
    struct isa {
        const char* name;
        const cpu::isa_ops* ops;
    };
    const isa isas[] = {{"avx2", cpu::avx2_ops()}, {"avx512", cpu::avx512_ops()}, {"neon", cpu::neon_ops()}};
    for (auto t : {ggml_type::q4_0, ggml_type::q4_1, ggml_type::q5_0, ggml_type::q5_1, ggml_type::q8_0, ggml_type::q2_k,
                   ggml_type::q3_k, ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k, ggml_type::f16, ggml_type::bf16}) {
        if (!cpu::packed_layout_for(t)) continue;
        for (const auto& i : isas) {
            if (!i.ops || !i.ops->packed_gemm_for || !i.ops->packed_gemm_for(t)) continue;
            for (bool packed_path : {false, true})
                for (const auto& s : shapes) {
                    const std::string name = std::string(edgellm::type_name(t)) + "/" + (packed_path ? "packed/" : "plain/") +
                                             i.name + "/" + s.name;
                    benchmark::RegisterBenchmark(name.c_str(), bm, t, i.ops, packed_path, s.n_rows, s.n_cols)
                        ->ArgNames({"tokens", "threads"})
                        ->Args({1, 1})
                        ->Args({16, 1})
                        ->Args({64, 1})
                        ->Args({1, 2})
                        ->Args({64, 2})
                        ->Unit(benchmark::kMillisecond)
                        ->UseRealTime();
                }
        }
    }
    return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
