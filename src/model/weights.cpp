// Tensor lookup with shape/type validation for model loading (matrices stay in the mapping).
#include "model/weights.h"

#include <fmt/format.h>

#include "kernels/kernels.h"
#include "quant/quant.h"

namespace edgellm::model {
namespace {

std::string shape_str(const int64_t* ne, int n_dims) {
    std::string s = "[";
    for (int i = 0; i < n_dims; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

}  // namespace

std::string layer_tensor_name(int il, const char* suffix) { return fmt::format("blk.{}.{}", il, suffix); }

const gguf::tensor_info& weight_loader::require(const std::string& name) {
    const gguf::tensor_info* t = file_.find_tensor(name);
    if (!t) throw error(fmt::format("model is missing tensor {}", name));
    return *t;
}

void weight_loader::check_shape(const gguf::tensor_info& t, int64_t ne0, int64_t ne1, int n_dims, int64_t ne2) {
    const int64_t want[gguf::k_max_dims] = {ne0, ne1, ne2, 1};
    bool ok = true;
    for (int i = 0; i < gguf::k_max_dims; ++i) ok = ok && t.ne[i] == want[i];
    if (!ok)
        throw error(fmt::format("tensor {} has shape {}, expected {}", t.name, shape_str(t.ne, std::max(t.n_dims, 1)),
                                shape_str(want, n_dims)));
}

matrix weight_loader::to_matrix(const gguf::tensor_info& t, int64_t n_cols, int64_t n_rows, int64_t n_mats) {
    check_shape(t, n_cols, n_rows, n_mats > 1 ? 3 : 2, n_mats);
    const auto& tr = type_traits(t.type);
    if (!can_dequantize(t.type))
        throw error(fmt::format("tensor {} has type {}, which edgellm cannot compute with yet", t.name, tr.name));
    if (n_cols % tr.block_size != 0)
        throw error(fmt::format("tensor {} has {} columns, not a multiple of the {} block size {}", t.name, n_cols,
                                tr.name, tr.block_size));
    n_matrix_bytes_ += t.size_bytes;
    return matrix{t.type, t.data, n_rows * n_mats, n_cols};
}

matrix row_slice(const matrix& m, int64_t first, int64_t n) {
    if (m.packed) throw error("row_slice of a packed matrix");
    matrix s = m;
    s.data = static_cast<const uint8_t*>(m.data) + row_size(m.type, m.n_cols) * static_cast<size_t>(first);
    s.n_rows = n;
    return s;
}

matrix weight_loader::require_stacked(const std::string& name, int64_t n_cols, int64_t n_rows, int64_t n_mats) {
    return to_matrix(require(name), n_cols, n_rows, n_mats);
}

matrix weight_loader::owned_matrix(std::vector<float> data, int64_t n_cols, int64_t n_rows) {
    if (data.size() != static_cast<size_t>(n_cols * n_rows)) throw error("owned_matrix: size mismatch");
    owned_.push_back(std::move(data));
    return matrix{ggml_type::f32, owned_.back().data(), n_rows, n_cols};
}

std::vector<float> weight_loader::dequantize_rows(const matrix& m, int64_t first, int64_t n) {
    const matrix rows = row_slice(m, first, n);
    std::vector<float> out(static_cast<size_t>(n * m.n_cols));
    const size_t rb = row_size(m.type, m.n_cols);
    for (int64_t r = 0; r < n; ++r)
        dequantize_row(m.type, static_cast<const uint8_t*>(rows.data) + rb * static_cast<size_t>(r),
                       &out[static_cast<size_t>(r * m.n_cols)], m.n_cols);
    return out;
}

const float* weight_loader::to_vector(const gguf::tensor_info& t, int64_t n) {
    // Some converters store a norm as [n, 1]; the element count and the row are what matter.
    check_shape(t, n, 1, 1);
    if (!can_dequantize(t.type))
        throw error(fmt::format("tensor {} has type {}, which edgellm cannot read", t.name, type_name(t.type)));
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(t.type, t.data, v.data(), n);
    owned_.push_back(std::move(v));
    return owned_.back().data();
}

void mul_mat(const matrix& w, const float* x, int64_t n_tokens, float* y, int n_threads) {
    if (w.packed)
        kernels::mul_mat_packed(w.type, w.data, w.n_rows, w.n_cols, x, n_tokens, y, n_threads);
    else
        kernels::mul_mat(w.type, w.data, w.n_rows, w.n_cols, x, n_tokens, y, n_threads);
}

matrix weight_loader::require_matrix(const std::string& name, int64_t n_cols, int64_t n_rows) {
    return to_matrix(require(name), n_cols, n_rows);
}

std::optional<matrix> weight_loader::optional_matrix(const std::string& name, int64_t n_cols, int64_t n_rows) {
    const gguf::tensor_info* t = file_.find_tensor(name);
    if (!t) return std::nullopt;
    return to_matrix(*t, n_cols, n_rows);
}

const float* weight_loader::require_vector(const std::string& name, int64_t n) { return to_vector(require(name), n); }

const float* weight_loader::optional_vector(const std::string& name, int64_t n) {
    const gguf::tensor_info* t = file_.find_tensor(name);
    return t ? to_vector(*t, n) : nullptr;
}

void load_common_layer(weight_loader& ld, const model_hparams& hp, int il, layer_weights& lw) {
    auto n = [il](const char* suffix) { return layer_tensor_name(il, suffix); };
    lw.attn_norm = ld.require_vector(n("attn_norm.weight"), hp.n_embd);
    lw.wq = ld.require_matrix(n("attn_q.weight"), hp.n_embd, hp.q_dim());
    lw.wk = ld.require_matrix(n("attn_k.weight"), hp.n_embd, hp.kv_dim());
    lw.wv = ld.require_matrix(n("attn_v.weight"), hp.n_embd, hp.kv_dim());
    lw.wo = ld.require_matrix(n("attn_output.weight"), hp.q_dim(), hp.n_embd);
    lw.ffn_norm = ld.require_vector(n("ffn_norm.weight"), hp.n_embd);
    lw.ffn_gate = ld.require_matrix(n("ffn_gate.weight"), hp.n_embd, hp.n_ff);
    lw.ffn_up = ld.require_matrix(n("ffn_up.weight"), hp.n_embd, hp.n_ff);
    lw.ffn_down = ld.require_matrix(n("ffn_down.weight"), hp.n_ff, hp.n_embd);
}

}  // namespace edgellm::model
