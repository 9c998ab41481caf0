// KL divergence of a model's next-token distributions from a base model's over the same text,
// as llama-perplexity's --kl-divergence-base / --kl-divergence: the base run saves its
// log-probabilities of the scored positions; the compared run reads them back and reports the
// mean KL divergence, top-1 agreement and the change in probability of the actual next token.
#pragma once
#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace edgellm::quality {

// The base file: a header, the text's token ids (the compared run uses exactly these), then per
// chunk n_rows x n_vocab log-probabilities as f32 (4 bytes x vocabulary per scored position:
// exact, so a model compared with its own base file gives a KL divergence of 0).
struct kld_header {
    uint32_t n_ctx = 0;
    uint32_t n_vocab = 0;
    uint32_t n_chunks = 0;
    uint32_t n_rows = 0;  // scored rows per chunk
};

class kld_base_writer {
public:
    // Creates `path` (written to a temporary name, renamed by finish()).
    kld_base_writer(const std::string& path, int64_t n_ctx, int64_t n_vocab, std::span<const int32_t> tokens);
    ~kld_base_writer();
    void add_chunk(std::span<const float> logits);  // [n_rows][n_vocab] logits
    void finish();                                 // writes the chunk count, renames into place

private:
    std::string path_, tmp_;
    std::ofstream out_;
    kld_header h_;
    std::vector<float> buf_;
    bool done_ = false;
};

class kld_base_reader {
public:
    explicit kld_base_reader(const std::string& path);  // format errors name the file
    const kld_header& header() const { return h_; }
    const std::vector<int32_t>& tokens() const { return tokens_; }
    // The next chunk's log-probabilities, [n_rows][n_vocab] as f32.
    std::vector<float> next_chunk();

private:
    std::string path_;
    std::ifstream in_;
    kld_header h_;
    std::vector<int32_t> tokens_;
};

struct kld_stats {
    int64_t n = 0;                 // positions compared
    double kld_mean = 0, kld_stderr = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
    double top1_agree = 0, top1_stderr = 0;   // fraction of positions with the same arg-max
    double dp_mean = 0, dp_rms = 0;           // p(actual token): compared - base
    double ppl_base = 0, ppl = 0;             // perplexities of both over the compared positions
};

// Accumulates per position: base log-probs vs the compared model's logits, and the token that
// actually followed.
class kld_accumulator {
public:
    void add(std::span<const float> base_logp, std::span<const float> logits, int32_t actual);
    kld_stats stats() const;

private:
    std::vector<double> kld_;
    int64_t agree_ = 0;
    double dp_sum_ = 0, dp_sq_ = 0, nll_base_ = 0, nll_ = 0;
    std::vector<double> logp_;  // scratch
};

}  // namespace edgellm::quality
