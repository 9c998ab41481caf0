// Embeddings: texts (or token ids) to vectors with a loaded model — an encoder (bert) or a decoder
// — batching many inputs of different lengths into one forward pass (one sequence per input),
// pooling each input's hidden states (mean, CLS, last token, or none) and L2-normalising them.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"

namespace edgellm::engine {

enum class pooling { none, mean, cls, last };
const char* pooling_name(pooling p);
// "none" / "mean" / "cls" / "last"; nullopt otherwise.
std::optional<pooling> parse_pooling(std::string_view s);
// The model's own pooling: {arch}.pooling_type (1 mean, 2 cls, 3 last, 0 none), else mean for
// encoders and last token for causal decoders (llama.cpp's choice for decoder embeddings).
// Rank pooling (4) is refused with a usage_error.
pooling model_pooling(const model::model_hparams& hp);

// Pools one sequence's hidden states ([n_tokens][n_embd]) into `out` ([n_embd]); for none, out
// receives all n_tokens rows. n_tokens must be positive.
void pool_hidden(const float* hidden, int64_t n_tokens, int64_t n_embd, pooling p,
                 std::vector<float>& out);
// Scales v to unit Euclidean length (a zero vector stays zero); for pooling none, each row of
// n_embd.
void l2_normalize(std::vector<float>& v, int64_t n_embd);

struct embed_options {
    std::optional<pooling> pool;  // nullopt: model_pooling()
    bool normalize = true;
    // Inputs longer than the context: true cuts them (keeping a trailing [SEP]/EOS the tokenizer
    // added), false refuses with a usage_error naming the input and its length.
    bool truncate = true;
};

struct embed_result {
    int64_t n_embd = 0;
    pooling pool = pooling::mean;
    std::vector<std::vector<float>>
        vectors;                    // [n_inputs] of [n_embd] (pooling none: [n_tokens * n_embd])
    std::vector<int64_t> n_tokens;  // [n_inputs] tokens each input ran as (after truncation)
    int64_t n_batches = 0;          // forward passes it took
    double ms = 0;                  // wall time of tokenisation + forward passes + pooling
};

// Sequence classification with a model's head (cls / cls.output tensors): one row of label
// probabilities per input.
struct classify_result {
    std::vector<std::string>
        labels;  // [n_labels] from {arch}.classifier.output_labels, else LABEL_i
    std::vector<std::vector<float>> probs;   // [n_inputs][n_labels] softmax of the head's logits
    std::vector<std::vector<float>> logits;  // [n_inputs][n_labels]
};

class embedder {
  public:
    // n_ctx 0: the model's training context (capped at 8192); n_batch: tokens per forward pass (at
    // least n_ctx for encoders, whose inputs must be whole in one pass; at most 512 for decoders,
    // whose longer inputs run in several steps); n_seq: inputs per pass.
    embedder(std::shared_ptr<const loaded_model> m, int n_threads, int64_t n_ctx = 0,
             int64_t n_batch = 2048, int n_seq = 32);

    int64_t n_embd() const;
    int64_t n_ctx() const { return n_ctx_; }
    // The model's tokens for `text`, with the special tokens its tokenizer adds ([CLS] ... [SEP],
    // BOS).
    std::vector<int32_t> tokenize(std::string_view text) const;
    embed_result embed(const std::vector<std::string>& texts, const embed_options& o);
    // Token ids as given (no special tokens added); ids outside the vocabulary or empty inputs
    // are a usage_error.
    embed_result embed_tokens(std::vector<std::vector<int32_t>> inputs, const embed_options& o);
    // Runs the classification head on each text's first-token ([CLS]) state; usage_error when the
    // model has no head. The head's activation is edgellm.classifier.activation ("tanh", BERT's
    // pooler, the default; "relu", DistilBERT's pre_classifier).
    classify_result classify(const std::vector<std::string>& texts);

  private:
    std::shared_ptr<const loaded_model> lm_;
    int64_t n_ctx_;
    int n_seq_;
    std::unique_ptr<model::kv_cache> kv_;
    std::unique_ptr<model::forward_pass> fwd_;
};

}  // namespace edgellm::engine
