// Flash attention compiled for the generic instruction set (see flash_attn_impl.h).
#include "kernels/cpu/flash_attn_impl.h"

namespace edgellm::kernels::cpu {

void flash_attention_generic(const float* q, int64_t q_stride, const kv_view& kv, const int64_t* kv_first,
                        const int64_t* n_kv, int64_t n_q, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                        float scale, float softcap, float* out, int64_t out_stride) {
    flash_attention_impl(q, q_stride, kv, kv_first, n_kv, n_q, n_head, n_head_kv, head_dim, scale, softcap, out,
                         out_stride);
}

}  // namespace edgellm::kernels::cpu
