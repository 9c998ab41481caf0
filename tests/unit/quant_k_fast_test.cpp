// The fast k-quant row quantizers (every ISA build, and the dispatching quantize_row_q*_k) produce
// the same bytes as the reference quantize_row_q*_k_ref on many kinds of rows: random normal,
// uniform, heavy-tailed with outliers, zeros, constants, one non-zero, tiny and huge magnitudes,
// negative-only, flat sub-blocks, at n = 256, 512 and 7*256.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "quant/quant.h"
#include "quant/quant_k_fast.h"

namespace edgellm {
namespace {

struct named_row {
    std::string name;
    std::vector<float> x;
};

std::vector<named_row> make_rows(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> uniform(-1.f, 1.f);
    std::student_t_distribution<float> student(1.5f);
    std::uniform_int_distribution<int64_t> pos(0, n - 1);
    const auto gen = [&](const std::function<float(int64_t)>& f) {
        std::vector<float> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) v[size_t(i)] = f(i);
        return v;
    };
    std::vector<named_row> rows;
    for (int r = 0; r < 12; ++r) {
        rows.push_back({"normal", gen([&](int64_t) { return normal(rng); })});
        rows.push_back({"normal_0.02", gen([&](int64_t) { return 0.02f * normal(rng); })});
        rows.push_back({"uniform", gen([&](int64_t) { return uniform(rng); })});
        rows.push_back({"uniform_positive", gen([&](int64_t) { return 0.5f * (uniform(rng) + 1.f); })});
        rows.push_back({"negative_only", gen([&](int64_t) { return -std::fabs(normal(rng)) - 0.01f; })});
        rows.push_back({"heavy_tailed", gen([&](int64_t) {
                            const float t = student(rng);
                            return std::isfinite(t) ? std::max(-1e6f, std::min(1e6f, t)) : 0.f;
                        })});
        auto outliers = gen([&](int64_t) { return 0.05f * normal(rng); });
        for (int k = 0; k < 5; ++k) outliers[size_t(pos(rng))] = 30.f * normal(rng);
        rows.push_back({"outliers", outliers});
        rows.push_back({"tiny_1e-30", gen([&](int64_t) { return 1e-30f * normal(rng); })});
        rows.push_back({"large_1e20", gen([&](int64_t) { return 1e20f * normal(rng); })});
        rows.push_back({"mixed_magnitudes", gen([&](int64_t i) {
                            const int e = static_cast<int>((i / 16) % 13) * 6 - 36;  // 1e-36 .. 1e36
                            return std::ldexp(normal(rng), static_cast<int>(e * 3.32f));
                        })});
        rows.push_back({"small_integers", gen([&](int64_t) { return std::round(4.f * uniform(rng)); })});
        // Sub-blocks of 16 (and so of 32) that are constant, with a different value per sub-block.
        std::vector<float> flat(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i += 16) {
            const float v = (r % 2 ? 1.f : 0.f) * normal(rng);
            for (int64_t k = 0; k < 16; ++k) flat[size_t(i + k)] = v;
        }
        rows.push_back({"flat_sub_blocks", flat});
        // Normal rows with some whole sub-blocks zeroed or flattened.
        auto patchy = gen([&](int64_t) { return normal(rng); });
        for (int64_t i = 0; i < n; i += 16) {
            const int kind = static_cast<int>(rng() % 4);
            for (int64_t k = 0; k < 16 && kind < 2; ++k) patchy[size_t(i + k)] = kind == 0 ? 0.f : 0.75f;
        }
        rows.push_back({"patchy", patchy});
    }
    rows.push_back({"zeros", std::vector<float>(size_t(n), 0.f)});
    rows.push_back({"negative_zeros", std::vector<float>(size_t(n), -0.f)});
    for (float c : {1.f, -1.f, 0.37f, -2.5e-3f, 1e-30f, 1e20f, -1e20f})
        rows.push_back({"constant_" + std::to_string(c), std::vector<float>(size_t(n), c)});
    for (int64_t p : {int64_t{0}, int64_t{17}, n / 2 + 5, n - 1}) {
        for (float v : {1.f, -3.f, 1e-30f, 1e20f}) {
            std::vector<float> one(size_t(n), 0.f);
            one[size_t(p)] = v;
            rows.push_back({"one_nonzero_at_" + std::to_string(p) + "_" + std::to_string(v), one});
        }
    }
    return rows;
}

using quantize_fn = std::function<void(const float*, void*, int64_t)>;

template <class Block>
quantize_fn wrap(void (*f)(const float*, Block*, int64_t)) {
    return [f](const float* x, void* y, int64_t n) { f(x, static_cast<Block*>(y), n); };
}

struct k_type {
    const char* name;
    size_t block_bytes;
    quantize_fn ref;
    quantize_fn dispatched;
    std::function<quantize_fn(const kquant_row_fns&)> of;
};

std::vector<k_type> k_types() {
    return {
        {"q2_k", sizeof(q2_k_block), wrap(quantize_row_q2_k_ref), wrap(quantize_row_q2_k),
         [](const kquant_row_fns& f) { return wrap(f.q2_k); }},
        {"q3_k", sizeof(q3_k_block), wrap(quantize_row_q3_k_ref), wrap(quantize_row_q3_k),
         [](const kquant_row_fns& f) { return wrap(f.q3_k); }},
        {"q4_k", sizeof(q4_k_block), wrap(quantize_row_q4_k_ref), wrap(quantize_row_q4_k),
         [](const kquant_row_fns& f) { return wrap(f.q4_k); }},
        {"q5_k", sizeof(q5_k_block), wrap(quantize_row_q5_k_ref), wrap(quantize_row_q5_k),
         [](const kquant_row_fns& f) { return wrap(f.q5_k); }},
        {"q6_k", sizeof(q6_k_block), wrap(quantize_row_q6_k_ref), wrap(quantize_row_q6_k),
         [](const kquant_row_fns& f) { return wrap(f.q6_k); }},
    };
}

// Runs `fast` against the reference on every row of every size; reports the first differing
// block of each failing row.
void expect_same_bytes(const k_type& t, const quantize_fn& fast, const std::string& label) {
    int n_rows = 0;
    for (int64_t n : {int64_t{256}, int64_t{512}, int64_t{256 * 7}}) {
        for (const auto& row : make_rows(n, static_cast<uint32_t>(n) * 31u + 7u)) {
            const size_t bytes = t.block_bytes * size_t(n / 256);
            std::vector<uint8_t> want(bytes, 0xAA), got(bytes, 0x55);
            t.ref(row.x.data(), want.data(), n);
            fast(row.x.data(), got.data(), n);
            ++n_rows;
            if (want != got) {
                size_t i = 0;
                while (want[i] == got[i]) ++i;
                ADD_FAILURE() << t.name << " " << label << ": row '" << row.name << "' n=" << n
                              << " differs first at byte " << i << " (block " << i / t.block_bytes << ", offset "
                              << i % t.block_bytes << "): want " << int(want[i]) << " got " << int(got[i]);
            }
        }
    }
    EXPECT_GT(n_rows, 500);
}

TEST(quant_k_fast, dispatched_quantizers_match_the_reference_byte_for_byte) {
    for (const auto& t : k_types()) expect_same_bytes(t, t.dispatched, std::string("dispatched (") +
                                                                           kquant_best_fns().name + ")");
}

TEST(quant_k_fast, generic_build_matches_the_reference_byte_for_byte) {
    for (const auto& t : k_types()) expect_same_bytes(t, t.of(kquant_generic_fns()), "generic");
}

TEST(quant_k_fast, avx2_build_matches_the_reference_byte_for_byte) {
    const kquant_row_fns* avx2 = kquant_avx2_fns();
    if (!avx2) GTEST_SKIP() << "AVX2 build not available here";
    for (const auto& t : k_types()) expect_same_bytes(t, t.of(*avx2), "avx2");
}

TEST(quant_k_fast, avx512_build_matches_the_reference_byte_for_byte) {
    const kquant_row_fns* avx512 = kquant_avx512_fns();
    if (!avx512) GTEST_SKIP() << "AVX-512 build not available here";
    for (const auto& t : k_types()) expect_same_bytes(t, t.of(*avx512), "avx512");
}

// Many independent random rows (different scales per row) as a broader net for rare paths.
TEST(quant_k_fast, random_scaled_rows_match_the_reference_byte_for_byte) {
    std::mt19937 rng(12345);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> expo(-12.f, 12.f);
    for (const auto& t : k_types()) {
        int n_bad = 0;
        for (int r = 0; r < 300; ++r) {
            const int64_t n = 256 * (1 + r % 3);
            const float scale = std::pow(2.f, expo(rng));
            const float shift = (r % 5 == 0) ? scale * normal(rng) : 0.f;
            std::vector<float> x(static_cast<size_t>(n));
            for (auto& v : x) v = scale * normal(rng) + shift;
            const size_t bytes = t.block_bytes * size_t(n / 256);
            std::vector<uint8_t> want(bytes), got(bytes);
            t.ref(x.data(), want.data(), n);
            t.dispatched(x.data(), got.data(), n);
            n_bad += want != got;
        }
        EXPECT_EQ(n_bad, 0) << t.name;
    }
}

}  // namespace
}  // namespace edgellm
