// Runtime dispatch of the public kernel ops: the reference when forced (EDGELLM_FORCE_REF=1 or
// set_force_reference), otherwise the best ISA table the CPU supports, else the generic table.
#include "kernels/kernels.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/cpu.h"
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

void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x,
             int64_t n_tokens, float* y, int n_threads) {
    check_mul_mat_args(wt, n_rows, n_cols, n_tokens);
    if (n_rows == 0 || n_tokens == 0) return;
    if (use_ref()) return ref::mul_mat(wt, w, n_rows, n_cols, x, n_tokens, y);
    cpu::mul_mat(best_ops(), wt, w, n_rows, n_cols, x, n_tokens, y, n_threads);
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

void add(float* y, const float* x, int64_t n) {
    const auto& o = best_ops();
    if (use_ref() || !o.add) return ref::add(y, x, n);
    o.add(y, x, n);
}

void attention(const float* q, const void* k, const void* v, ggml_type kv_type, int64_t n_kv,
               int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, float* out,
               float* scratch) {
    const auto& o = best_ops();
    if (use_ref() || !o.attention)
        return ref::attention(q, k, v, kv_type, n_kv, n_head, n_head_kv, head_dim, scale, out, scratch);
    o.attention(q, k, v, kv_type, n_kv, n_head, n_head_kv, head_dim, scale, out, scratch);
}

void get_row(ggml_type wt, const void* w, int64_t n_cols, int64_t row, float* dst) {
    // Dequantizing one row is cheap and exact in both paths: the reference serves both.
    ref::get_row(wt, w, n_cols, row, dst);
}

}  // namespace edgellm::kernels
