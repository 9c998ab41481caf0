// The KL-divergence base file and the statistics (see kl_divergence.h).
#include "quality/kl_divergence.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "quality/perplexity.h"

namespace edgellm::quality {
namespace {

constexpr char k_magic[8] = {'E', 'D', 'G', 'E', 'K', 'L', 'D', '1'};

// log-softmax of one row into out (double).
void log_softmax(std::span<const float> logits, std::vector<double>& out) {
    out.resize(logits.size());
    const double lse = log_sum_exp(logits);
    for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lse;
}

}  // namespace

kld_base_writer::kld_base_writer(const std::string& path, int64_t n_ctx, int64_t n_vocab,
                                 std::span<const int32_t> tokens)
    : path_(path), tmp_(path + ".partial") {
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) throw usage_error(fmt::format("cannot write the KL-divergence base file '{}'", path));
    h_.n_ctx = static_cast<uint32_t>(n_ctx);
    h_.n_vocab = static_cast<uint32_t>(n_vocab);
    h_.n_rows = static_cast<uint32_t>(n_ctx - 1 - n_ctx / 2);
    const uint64_t n_tokens = tokens.size();
    out_.write(k_magic, sizeof k_magic);
    out_.write(reinterpret_cast<const char*>(&h_), sizeof h_);
    out_.write(reinterpret_cast<const char*>(&n_tokens), sizeof n_tokens);
    out_.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size_bytes()));
}

kld_base_writer::~kld_base_writer() {
    if (!done_) {
        out_.close();
        std::remove(tmp_.c_str());  // no partial file left behind
    }
}

void kld_base_writer::add_chunk(std::span<const float> logits) {
    const size_t n_vocab = h_.n_vocab;
    if (logits.size() != static_cast<size_t>(h_.n_rows) * n_vocab) throw error("KL base: chunk of the wrong size");
    std::vector<double> lp;
    buf_.resize(logits.size());
    for (size_t r = 0; r < h_.n_rows; ++r) {
        log_softmax(logits.subspan(r * n_vocab, n_vocab), lp);
        for (size_t i = 0; i < n_vocab; ++i) buf_[r * n_vocab + i] = static_cast<float>(lp[i]);
    }
    out_.write(reinterpret_cast<const char*>(buf_.data()), static_cast<std::streamsize>(buf_.size() * sizeof(float)));
    ++h_.n_chunks;
}

void kld_base_writer::finish() {
    out_.seekp(sizeof k_magic);
    out_.write(reinterpret_cast<const char*>(&h_), sizeof h_);
    out_.close();
    if (!out_) throw error(fmt::format("writing the KL-divergence base file '{}' failed", path_));
    std::filesystem::rename(tmp_, path_);
    done_ = true;
}

kld_base_reader::kld_base_reader(const std::string& path) : path_(path) {
    in_.open(path, std::ios::binary);
    if (!in_) throw usage_error(fmt::format("cannot read the KL-divergence base file '{}'", path));
    char magic[8] = {};
    uint64_t n_tokens = 0;
    in_.read(magic, sizeof magic);
    in_.read(reinterpret_cast<char*>(&h_), sizeof h_);
    in_.read(reinterpret_cast<char*>(&n_tokens), sizeof n_tokens);
    if (!in_ || std::memcmp(magic, k_magic, sizeof magic) != 0)
        throw usage_error(fmt::format("'{}' is not an edgellm KL-divergence base file (write one with "
                                      "--kl-divergence-base)", path));
    const uint64_t size = std::filesystem::file_size(path);
    const uint64_t need = sizeof magic + sizeof h_ + sizeof n_tokens + n_tokens * 4 +
                          uint64_t{h_.n_chunks} * h_.n_rows * h_.n_vocab * sizeof(float);
    if (h_.n_vocab == 0 || h_.n_ctx < 2 || n_tokens > (uint64_t{1} << 32) ||
        h_.n_rows != h_.n_ctx - 1 - h_.n_ctx / 2 || size != need)
        throw usage_error(fmt::format("the KL-divergence base file '{}' is truncated or corrupt", path));
    tokens_.resize(n_tokens);
    in_.read(reinterpret_cast<char*>(tokens_.data()), static_cast<std::streamsize>(n_tokens * 4));
}

std::vector<float> kld_base_reader::next_chunk() {
    std::vector<float> out(static_cast<size_t>(h_.n_rows) * h_.n_vocab);
    in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
    if (!in_) throw usage_error(fmt::format("the KL-divergence base file '{}' ended early", path_));
    return out;
}

void kld_accumulator::add(std::span<const float> base_logp, std::span<const float> logits, int32_t actual) {
    log_softmax(logits, logp_);
    double kld = 0;
    size_t base_top = 0, top = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
        const double lb = base_logp[i];
        // At the base file's precision (f32) on both sides: identical logits give exactly 0.
        kld += std::exp(lb) * (lb - static_cast<double>(static_cast<float>(logp_[i])));
        if (base_logp[i] > base_logp[base_top]) base_top = i;
        if (logp_[i] > logp_[top]) top = i;
    }
    kld_.push_back(std::max(kld, 0.0));  // f32 rounding of the base can leave a tiny negative
    agree_ += base_top == top ? 1 : 0;
    const auto a = static_cast<size_t>(actual);
    const double dp = std::exp(logp_[a]) - std::exp(static_cast<double>(base_logp[a]));
    dp_sum_ += dp;
    dp_sq_ += dp * dp;
    nll_base_ -= base_logp[a];
    nll_ -= logp_[a];
}

kld_stats kld_accumulator::stats() const {
    kld_stats s;
    s.n = static_cast<int64_t>(kld_.size());
    if (s.n == 0) return s;
    const double n = static_cast<double>(s.n);
    double sum = 0, sq = 0;
    for (double k : kld_) sum += k, sq += k * k;
    s.kld_mean = sum / n;
    if (s.n > 1) s.kld_stderr = std::sqrt(std::max(0.0, sq / n - s.kld_mean * s.kld_mean) / (n - 1));
    std::vector<double> sorted = kld_;
    std::sort(sorted.begin(), sorted.end());
    s.kld_median = sorted[sorted.size() / 2];
    s.kld_p99 = sorted[std::min(sorted.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(sorted.size())))];
    s.kld_max = sorted.back();
    s.top1_agree = static_cast<double>(agree_) / n;
    if (s.n > 1) s.top1_stderr = std::sqrt(s.top1_agree * (1 - s.top1_agree) / (n - 1));
    s.dp_mean = dp_sum_ / n;
    s.dp_rms = std::sqrt(dp_sq_ / n);
    s.ppl_base = std::exp(nll_base_ / n);
    s.ppl = std::exp(nll_ / n);
    return s;
}

}  // namespace edgellm::quality
