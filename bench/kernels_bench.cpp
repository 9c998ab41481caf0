// Microbenchmarks of kernels::mul_mat at TinyLlama-1.1B shapes: per weight type, decode (1 token),
// a 4-sequence decode batch (4 tokens) and prefill (32 tokens), 1 and 2 threads, reporting weight
// GB/s and GFLOP/s; plus the reference path at one shape so fast/ref ratios can be quoted.
#include <benchmark/benchmark.h>

#include <cstring>
#include <tuple>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace {
using edgellm::ggml_type;

// A [n_rows][n_cols] matrix: 64 distinct rows quantized from random normal floats, repeated
// (timing does not depend on the values, and quantizing 65M K-quant weights would take long).
const std::vector<uint8_t>& weights(ggml_type t, int64_t n_rows, int64_t n_cols) {
    static std::map<std::tuple<ggml_type, int64_t, int64_t>, std::vector<uint8_t>> cache;
    auto& w = cache[{t, n_rows, n_cols}];
    if (!w.empty()) return w;
    const size_t rb = edgellm::row_size(t, n_cols);
    const int64_t n_distinct = std::min<int64_t>(64, n_rows);
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> src(static_cast<size_t>(n_cols));
    w.resize(rb * size_t(n_rows));
    for (int64_t r = 0; r < n_distinct; ++r) {
        for (auto& v : src) v = dist(rng);
        edgellm::quantize_row(t, src.data(), w.data() + size_t(r) * rb, n_cols);
    }
    for (int64_t r = n_distinct; r < n_rows; ++r)
        std::memcpy(w.data() + size_t(r) * rb, w.data() + size_t(r % n_distinct) * rb, rb);
    return w;
}

void bm_mul_mat(benchmark::State& state, ggml_type t, int64_t n_rows, int64_t n_cols, bool reference) {
    const int64_t n_tokens = state.range(0);
    const int n_threads = int(state.range(1));
    const auto& w = weights(t, n_rows, n_cols);
    std::vector<float> x(size_t(n_cols * n_tokens), 0.5f), y(size_t(n_rows * n_tokens));
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (auto& v : x) v = dist(rng);
    edgellm::kernels::set_force_reference(reference);
    for (auto _ : state) {
        edgellm::kernels::mul_mat(t, w.data(), n_rows, n_cols, x.data(), n_tokens, y.data(), n_threads);
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    edgellm::kernels::set_force_reference(false);
    const double iters = double(state.iterations());
    state.counters["weight_GB/s"] = benchmark::Counter(double(w.size()) * iters / 1e9, benchmark::Counter::kIsRate);
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * double(n_rows * n_cols * n_tokens) * iters / 1e9, benchmark::Counter::kIsRate);
    state.SetLabel(reference ? "reference" : edgellm::kernels::impl_name(edgellm::kernels::active_impl()));
}

// Prefill attention at TinyLlama's shape (32 query heads, 4 KV heads, head_dim 64, F16 KV cache):
// n_q tokens of a fresh sequence, causal (token i sees keys 0..i), one flash_attention call over
// all KV heads (the engine splits KV heads across threads; this is one thread's kernel).
void bm_flash(benchmark::State& state) {
    const int64_t n_q = state.range(0), n_head = 32, n_head_kv = 4, head_dim = 64;
    const int64_t row = n_head_kv * head_dim;
    std::mt19937 rng(3);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> q(size_t(n_q * n_head * head_dim)), out(q.size());
    for (auto& v : q) v = dist(rng);
    std::vector<uint16_t> k(size_t(n_q * row)), v(k.size());
    for (size_t i = 0; i < k.size(); ++i) {
        k[i] = edgellm::fp32_to_fp16(dist(rng));
        v[i] = edgellm::fp32_to_fp16(dist(rng));
    }
    const auto kv = edgellm::kernels::kv_view::contiguous(k.data(), v.data(), ggml_type::f16, row);
    std::vector<int64_t> n_kv(static_cast<size_t>(n_q));
    double macs = 0.0;
    for (int64_t i = 0; i < n_q; ++i) {
        n_kv[size_t(i)] = i + 1;
        macs += 2.0 * double(i + 1) * double(n_head * head_dim);  // q.k and p.v
    }
    for (auto _ : state) {
        edgellm::kernels::flash_attention(q.data(), n_head * head_dim, kv, n_kv.data(), n_q, n_head, n_head_kv, head_dim,
                                          0.125f, out.data(), n_head * head_dim);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * macs * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

struct shape {
    const char* name;
    int64_t n_rows, n_cols;
};

int register_all() {
    const shape shapes[] = {{"attn_2048x2048", 2048, 2048},
                            {"ffn_up_5632x2048", 5632, 2048},
                            {"ffn_down_2048x5632", 2048, 5632},
                            {"output_32000x2048", 32000, 2048}};
    const ggml_type types[] = {ggml_type::q4_0, ggml_type::q8_0, ggml_type::q4_k, ggml_type::q6_k,
                               ggml_type::f16,  ggml_type::f32,  ggml_type::q4_1, ggml_type::q5_0,
                               ggml_type::q5_1, ggml_type::q5_k, ggml_type::q3_k, ggml_type::q2_k, ggml_type::bf16};
    for (auto t : types)
        for (const auto& s : shapes) {
            const std::string name = "mul_mat/" + std::string(edgellm::type_name(t)) + "/" + s.name;
            benchmark::RegisterBenchmark(name.c_str(), bm_mul_mat, t, s.n_rows, s.n_cols, false)
                ->ArgNames({"tokens", "threads"})
                ->ArgsProduct({{1, 4, 32}, {1, 2}})
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
        }
    benchmark::RegisterBenchmark("flash_attention/f16/tinyllama", bm_flash)
        ->ArgName("tokens")
        ->Arg(128)
        ->Arg(512)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    // The reference at the attention shape, decode only (it is ~100x slower).
    for (auto t : {ggml_type::q4_0, ggml_type::q8_0, ggml_type::q4_k, ggml_type::q6_k, ggml_type::f16}) {
        const std::string name = "mul_mat_ref/" + std::string(edgellm::type_name(t)) + "/attn_2048x2048";
        benchmark::RegisterBenchmark(name.c_str(), bm_mul_mat, t, 2048, 2048, true)
            ->ArgNames({"tokens", "threads"})
            ->Args({1, 1})
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
    return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
