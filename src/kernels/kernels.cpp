// Runtime dispatch of the public kernel ops: the reference when forced (EDGELLM_FORCE_REF=1 or
// set_force_reference), otherwise the best ISA table the CPU supports, else the generic table.
#include "kernels/kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/packed.h"
#include "kernels/ref/ref.h"

namespace edgellm::kernels {
namespace {

bool env_forces_reference() {
    const char* v = std::getenv("EDGELLM_FORCE_REF");
    return v && *v && std::strcmp(v, "0") != 0;
}

std::atomic<bool>& force_ref_flag() {
    static std::atomic<bool> flag{env_forces_reference()};
    return flag;
}

const cpu::isa_ops& best_ops() {
    static const cpu::isa_ops* ops = [] {
        if (const auto* o = cpu::avx512_ops()) return o;
        if (const auto* o = cpu::avx2_ops()) return o;
        if (const auto* o = cpu::neon_ops()) return o;
        return &cpu::generic_ops();
    }();
    return *ops;
}

inline bool use_ref() { return force_ref_flag().load(std::memory_order_relaxed); }

void check_mul_mat_args(ggml_type wt, int64_t n_rows, int64_t n_cols, int64_t n_tokens) {
    const auto& tr = type_traits(wt);
    if (n_rows < 0 || n_cols < 0 || n_tokens < 0) throw error("mul_mat: negative dimension");
    if (n_cols % tr.block_size != 0)
        throw error("mul_mat: n_cols " + std::to_string(n_cols) + " is not a multiple of the " +
                    std::string(tr.name) + " block size " + std::to_string(tr.block_size));
}

}  // namespace

impl active_impl() { return use_ref() ? impl::reference : best_ops().id; }

const char* impl_name(impl i) {
    switch (i) {
        case impl::reference: return "reference";
        case impl::avx2: return "avx2";
        case impl::avx512: return "avx512";
        case impl::neon: return "neon";
        case impl::generic: return "generic";
    }
    return "unknown";
}

void set_force_reference(bool on) { force_ref_flag().store(on); }

namespace {
thread_local bool t_batch_invariant = false;
}  // namespace
void set_batch_invariant(bool on) { t_batch_invariant = on; }
bool batch_invariant() { return t_batch_invariant; }

void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x,
             int64_t n_tokens, float* y, int n_threads) {
    check_mul_mat_args(wt, n_rows, n_cols, n_tokens);
    if (n_rows == 0 || n_tokens == 0) return;
    if (use_ref()) return ref::mul_mat(wt, w, n_rows, n_cols, x, n_tokens, y);
    cpu::mul_mat(best_ops(), wt, w, n_rows, n_cols, x, n_tokens, y, n_threads);
}

namespace {
// The packed gemm this CPU uses for wt, or null.
cpu::packed_gemm_fn packed_gemm(ggml_type wt) {
    const auto& o = best_ops();
    return o.packed_gemm_for ? o.packed_gemm_for(wt) : nullptr;
}
}  // namespace

size_t packed_size(ggml_type wt, int64_t n_rows, int64_t n_cols) {
    static const bool disabled = [] {
        const char* v = std::getenv("EDGELLM_NO_REPACK");
        return v && *v && std::strcmp(v, "0") != 0;
    }();
    const cpu::packed_layout* l = cpu::packed_layout_for(wt);
    if (disabled || use_ref() || !l || !packed_gemm(wt) || n_rows < cpu::k_pack_rows) return 0;
    check_mul_mat_args(wt, n_rows, n_cols, 1);
    return cpu::packed_bytes(*l, n_rows, n_cols);
}

void pack_weights(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, void* dst, int n_threads) {
    const cpu::packed_layout* l = cpu::packed_layout_for(wt);
    if (!l) throw error("pack_weights: no packed layout for " + std::string(type_name(wt)));
    check_mul_mat_args(wt, n_rows, n_cols, 1);
    cpu::pack_matrix(*l, w, n_rows, n_cols, dst, n_threads);
}

void mul_mat_packed(ggml_type wt, const void* packed, int64_t n_rows, int64_t n_cols, const float* x,
                    int64_t n_tokens, float* y, int n_threads) {
    check_mul_mat_args(wt, n_rows, n_cols, n_tokens);
    const cpu::packed_layout* l = cpu::packed_layout_for(wt);
    if (!l) throw error("mul_mat_packed: no packed layout for " + std::string(type_name(wt)));
    if (n_rows == 0 || n_tokens == 0) return;
    const cpu::packed_gemm_fn gemm = packed_gemm(wt);
    if (!use_ref() && gemm)
        return cpu::mul_mat_packed(best_ops(), *l, gemm, packed, n_rows, n_cols, x, n_tokens, y, n_threads);
    // Reference: unpack each group back to 8 GGUF rows and run the reference product on them.
    const int64_t n_groups = n_rows / cpu::k_pack_rows;
    const size_t rb = row_size(wt, n_cols), gb = l->group_bytes(n_cols);
    const auto* p = static_cast<const uint8_t*>(packed);
    std::vector<uint8_t> rows(rb * cpu::k_pack_rows);
    std::vector<float> y8(size_t(n_tokens) * cpu::k_pack_rows);
    for (int64_t g = 0; g <= n_groups; ++g) {
        const int64_t n = g < n_groups ? cpu::k_pack_rows : n_rows % cpu::k_pack_rows;
        if (n == 0) break;
        const void* w = p + size_t(g) * gb;
        if (g < n_groups) {
            l->unpack(w, n_cols, rows.data(), rb);
            w = rows.data();
        }
        ref::mul_mat(wt, w, n, n_cols, x, n_tokens, y8.data());
        for (int64_t t = 0; t < n_tokens; ++t)
            std::copy_n(&y8[size_t(t * n)], n, y + t * n_rows + g * cpu::k_pack_rows);
    }
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps) {
    const auto& o = best_ops();
    if (use_ref() || !o.rms_norm) return ref::rms_norm(x, weight, y, n, n_tokens, eps);
    o.rms_norm(x, weight, y, n, n_tokens, eps);
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float freq_base,
          float freq_scale, const float* freq_factors, rope_mode mode) {
    if (use_ref()) return ref::rope(x, n_heads, head_dim, n_rot, pos, freq_base, freq_scale, freq_factors, mode);
    cpu::rope(x, n_heads, head_dim, n_rot, pos, freq_base, freq_scale, freq_factors, mode);
}

void rope_angles(int64_t n_rot, int64_t pos, float freq_base, float freq_scale, const float* freq_factors, float* cs) {
    cpu::rope_angles(n_rot, pos, freq_base, freq_scale, freq_factors, cs);
}

void rope_rotate(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs, rope_mode mode) {
    cpu::rope_rotate(x, n_heads, head_dim, n_rot, cs, mode);
}

void softmax(float* x, int64_t n) {
    const auto& o = best_ops();
    if (use_ref() || !o.softmax) return ref::softmax(x, n);
    o.softmax(x, n);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
    const auto& o = best_ops();
    if (use_ref() || !o.swiglu) return ref::swiglu(gate, up, y, n);
    o.swiglu(gate, up, y, n);
}

void geglu(const float* gate, const float* up, float* y, int64_t n) {
    if (use_ref()) return ref::geglu(gate, up, y, n);
    const auto& o = best_ops();
    (o.geglu ? o.geglu : cpu::generic_ops().geglu)(gate, up, y, n);
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, int64_t n, int64_t n_tokens,
                float eps) {
    ref::layer_norm(x, weight, bias, y, n, n_tokens, eps);
}

void gelu(float* x, int64_t n) { ref::gelu(x, n); }

void softcap(float* x, int64_t n, float cap) {
    if (!(cap > 0.0f)) throw error("softcap: the cap must be positive");
    if (use_ref()) return ref::softcap(x, n, cap);
    const auto& o = best_ops();
    (o.softcap ? o.softcap : cpu::generic_ops().softcap)(x, n, cap);
}

void add(float* y, const float* x, int64_t n) {
    const auto& o = best_ops();
    if (use_ref() || !o.add) return ref::add(y, x, n);
    o.add(y, x, n);
}

namespace {
// Attention over rows [first, n_kv) built from the ISA's dot and softmax: each head's slice of a
// row is converted to f32 (dequantizing whole blocks), scores optionally soft-capped. Serves the
// quantized KV types and the windowed / soft-capped form; the reference does the same in double.
void attention_rows(const cpu::isa_ops& o, const float* q, const kv_view& kv, int64_t first, int64_t n_kv,
                    int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, float cap, float* out,
                    float* scratch) {
    if (n_head_kv <= 0 || n_head % n_head_kv != 0) throw error("attention: n_head must be a multiple of n_head_kv");
    if (kv.type != ggml_type::f32 && kv.type != ggml_type::f16 && kv.type != ggml_type::q8_0 &&
        kv.type != ggml_type::q4_0)
        throw error("attention: KV cache type must be F32, F16, Q8_0 or Q4_0");
    const auto dot = o.dot_f32 ? o.dot_f32 : cpu::generic_ops().dot_f32;
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(head_dim));
    const int64_t group = n_head / n_head_kv;
    const int64_t n = n_kv - first;
    float* sc = scratch + first;
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t hk_first = (h / group) * head_dim;
        const float* qh = q + h * head_dim;
        for (int64_t j = 0; j < n; ++j) {
            ref::kv_head_slice(kv.k_row(first + j), kv.type, hk_first, head_dim, row.data());
            sc[j] = dot(qh, row.data(), head_dim) * scale;
        }
        if (cap > 0.0f) softcap(sc, n, cap);
        softmax(sc, n);
        float* oh = out + h * head_dim;
        std::fill(oh, oh + head_dim, 0.0f);
        for (int64_t j = 0; j < n; ++j) {
            ref::kv_head_slice(kv.v_row(first + j), kv.type, hk_first, head_dim, row.data());
            const float p = sc[j];
            for (int64_t d = 0; d < head_dim; ++d) oh[d] += p * row[d];
        }
    }
}
}  // namespace

void attention(const float* q, const kv_view& kv, int64_t n_kv, int64_t n_head, int64_t n_head_kv,
               int64_t head_dim, float scale, float* out, float* scratch) {
    const auto& o = best_ops();
    if (use_ref() || !o.attention)
        return ref::attention(q, kv, n_kv, n_head, n_head_kv, head_dim, scale, out, scratch);
    if (kv.type == ggml_type::q8_0 || kv.type == ggml_type::q4_0)
        return attention_rows(o, q, kv, 0, n_kv, n_head, n_head_kv, head_dim, scale, 0.0f, out, scratch);
    o.attention(q, kv, n_kv, n_head, n_head_kv, head_dim, scale, out, scratch);
}

void attention_ext(const float* q, const kv_view& kv, int64_t kv_first, int64_t n_kv, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, float scale, float softcap, float* out, float* scratch) {
    if (kv_first < 0 || kv_first >= n_kv) throw error("attention: the key range must not be empty");
    if (use_ref()) return ref::attention_ext(q, kv, kv_first, n_kv, n_head, n_head_kv, head_dim, scale, softcap, out,
                                             scratch);
    if (kv_first == 0 && !(softcap > 0.0f))
        return attention(q, kv, n_kv, n_head, n_head_kv, head_dim, scale, out, scratch);
    attention_rows(best_ops(), q, kv, kv_first, n_kv, n_head, n_head_kv, head_dim, scale, softcap, out, scratch);
}

void flash_attention(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* n_kv, int64_t n_q,
                     int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, float* out, int64_t out_stride) {
    flash_attention_ext(q, q_stride, kv, nullptr, n_kv, n_q, n_head, n_head_kv, head_dim, scale, 0.0f, out,
                        out_stride);
}

void flash_attention_ext(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* kv_first,
                         const int64_t* n_kv, int64_t n_q, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                         float scale, float softcap, float* out, int64_t out_stride) {
    if (use_ref()) {
        // The reference is the plain softmax attention, one query at a time.
        int64_t max_kv = 0;
        for (int64_t i = 0; i < n_q; ++i) max_kv = std::max(max_kv, n_kv[i]);
        std::vector<float> scratch(static_cast<size_t>(max_kv));
        for (int64_t i = 0; i < n_q; ++i)
            ref::attention_ext(q + i * q_stride, kv, kv_first ? kv_first[i] : 0, n_kv[i], n_head, n_head_kv, head_dim,
                               scale, softcap, out + i * out_stride, scratch.data());
        return;
    }
    const auto& o = best_ops();
    const auto fn = o.flash_attention ? o.flash_attention : cpu::generic_ops().flash_attention;
    fn(q, q_stride, kv, kv_first, n_kv, n_q, n_head, n_head_kv, head_dim, scale, softcap, out, out_stride);
}

kv_view kv_view::contiguous(const void* k, const void* v, ggml_type type, int64_t row_elems) {
    kv_view view;
    view.k = static_cast<const uint8_t*>(k);
    view.v = static_cast<const uint8_t*>(v);
    view.type = type;
    view.row_bytes = row_size(type, row_elems);
    return view;
}

void get_row(ggml_type wt, const void* w, int64_t n_cols, int64_t row, float* dst) {
    // Dequantizing one row is cheap and exact in both paths: the reference serves both.
    ref::get_row(wt, w, n_cols, row, dst);
}

}  // namespace edgellm::kernels
