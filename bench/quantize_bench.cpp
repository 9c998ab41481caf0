// Microbenchmark of the k-quant row quantizers: the reference (quantize_row_q*_k_ref) against the
// fast builds (portable, AVX2, AVX-512) and the dispatched quantize_row_q*_k, 1 thread, rows of 2048 floats
// drawn like LLM weights (normal, a few outliers). Reports ns/row and MB/s of float input.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "quant/quant.h"
#include "quant/quant_k_fast.h"

namespace {
using namespace edgellm;

constexpr int64_t k_cols = 2048;
constexpr int k_rows = 16;

const std::vector<float>& input() {
    static const std::vector<float> x = [] {
        std::vector<float> v(size_t(k_cols) * k_rows);
        std::mt19937 rng(42);
        std::normal_distribution<float> dist(0.0f, 0.02f);
        for (auto& f : v) f = dist(rng);
        for (size_t i = 0; i < v.size(); i += 997) v[i] *= 20.f;
        return v;
    }();
    return x;
}

template <class Block>
void bm(benchmark::State& state, void (*f)(const float*, Block*, int64_t)) {
    if (!f) {
        state.SkipWithError("build not available on this CPU");
        return;
    }
    const auto& x = input();
    std::vector<Block> y(size_t(k_cols / QK_K));
    int64_t row = 0;
    for (auto _ : state) {
        f(x.data() + (row % k_rows) * k_cols, y.data(), k_cols);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
        ++row;
    }
    state.SetBytesProcessed(state.iterations() * k_cols * int64_t(sizeof(float)));
    state.counters["ns_per_row"] =
        benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class Block>
void add(const char* type, void (*ref)(const float*, Block*, int64_t), void (*dispatched)(const float*, Block*, int64_t),
         void (*generic)(const float*, Block*, int64_t), void (*avx2)(const float*, Block*, int64_t),
         void (*avx512)(const float*, Block*, int64_t)) {
    const std::string t(type);
    benchmark::RegisterBenchmark((t + "/ref").c_str(), bm<Block>, ref);
    benchmark::RegisterBenchmark((t + "/fast").c_str(), bm<Block>, dispatched);
    benchmark::RegisterBenchmark((t + "/generic").c_str(), bm<Block>, generic);
    benchmark::RegisterBenchmark((t + "/avx2").c_str(), bm<Block>, avx2);
    benchmark::RegisterBenchmark((t + "/avx512").c_str(), bm<Block>, avx512);
}

const bool registered = [] {
    const kquant_row_fns& g = kquant_generic_fns();
    const kquant_row_fns* a = kquant_avx2_fns();
    const kquant_row_fns* z = kquant_avx512_fns();
    add<q2_k_block>("q2_k", quantize_row_q2_k_ref, quantize_row_q2_k, g.q2_k, a ? a->q2_k : nullptr,
                    z ? z->q2_k : nullptr);
    add<q3_k_block>("q3_k", quantize_row_q3_k_ref, quantize_row_q3_k, g.q3_k, a ? a->q3_k : nullptr,
                    z ? z->q3_k : nullptr);
    add<q4_k_block>("q4_k", quantize_row_q4_k_ref, quantize_row_q4_k, g.q4_k, a ? a->q4_k : nullptr,
                    z ? z->q4_k : nullptr);
    add<q5_k_block>("q5_k", quantize_row_q5_k_ref, quantize_row_q5_k, g.q5_k, a ? a->q5_k : nullptr,
                    z ? z->q5_k : nullptr);
    add<q6_k_block>("q6_k", quantize_row_q6_k_ref, quantize_row_q6_k, g.q6_k, a ? a->q6_k : nullptr,
                    z ? z->q6_k : nullptr);
    return true;
}();

}  // namespace

BENCHMARK_MAIN();
