// Reader for Hugging Face safetensors checkpoints (an 8-byte little-endian header length, a JSON
// header of {name: {dtype, shape, data_offsets}}, then the tensor bytes), memory-mapped, one file
// or the shards an index (model.safetensors.index.json) names. Every offset and size is validated.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap.h"

namespace edgellm::convert {

struct st_tensor {
    std::string name;
    std::string dtype;           // "F32", "F16", "BF16", "I64" ...
    std::vector<int64_t> shape;  // outermost first, as PyTorch
    const uint8_t* data = nullptr;
    size_t n_bytes = 0;
    std::string file;  // the shard it lives in
    int64_t n_elements() const;
};

class safetensors_set {
  public:
    // Opens `dir`'s model.safetensors.index.json shards, else every *.safetensors file in it;
    // throws edgellm::error naming the missing or malformed file.
    static safetensors_set open_dir(const std::string& dir);
    // One file (also used by tests).
    void add_file(const std::string& path);

    const st_tensor* find(const std::string& name) const;
    const std::map<std::string, st_tensor>& tensors() const { return tensors_; }
    // The tensor's elements as f32 (F32, F16, BF16 accepted; others throw naming the dtype).
    static std::vector<float> to_f32(const st_tensor& t);

  private:
    std::vector<std::unique_ptr<mapped_file>> files_;
    std::map<std::string, st_tensor> tensors_;
};

}  // namespace edgellm::convert
