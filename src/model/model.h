// A loaded model: the GGUF mapping it lives in, its architecture, hyperparameters and weights.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace edgellm::model {

// The hyperparameters model loading works with (architecture lookup, the common keys, then the
// architecture's adjustments and the checks that need them), without reading any weight; for
// memory planning. Throws edgellm::error as loading would.
model_hparams read_model_hparams(const gguf::file& f);

class model {
public:
    // Opens and validates a GGUF model: unsupported architecture, missing tensors and wrong
    // shapes raise edgellm::error with a message naming the problem.
    static std::unique_ptr<model> load(const std::string& path);
    static std::unique_ptr<model> from_file(gguf::file f);

    const gguf::file& file() const { return file_; }
    const arch_def& arch() const { return *arch_; }
    const model_hparams& hparams() const { return hp_; }
    const model_weights& weights() const { return w_; }
    // An encoder (bert): no output layer, so it embeds but cannot generate text.
    bool is_encoder() const { return !w_.output; }

    // Converts every matrix the CPU kernels have a packed layout for into that layout (an
    // anonymous copy, the file pages behind it are dropped from RSS), using n_threads. Skips the
    // token embeddings (read by row) and a tied output. Returns the bytes now held packed.
    uint64_t repack(int n_threads);
    uint64_t packed_bytes() const { return packed_bytes_; }

private:
    model() = default;
    gguf::file file_;
    const arch_def* arch_ = nullptr;
    model_hparams hp_;
    model_weights w_;
    std::vector<std::vector<float>> owned_;  // f32 copies of 1-D tensors (norms, biases)
    anon_buffer packed_;  // packed copies of matrices
    uint64_t packed_bytes_ = 0;
};

}  // namespace edgellm::model
