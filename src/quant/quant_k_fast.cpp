// Fast k-quant row quantizers (quantize_row_q2_k .. quantize_row_q6_k): the portable build of
// quant_k_fast_impl.h and the run-time choice between it and the AVX2 / AVX-512 builds.
#define EDGELLM_KQ_NS kquant_generic
#define EDGELLM_KQ_VEC_BYTES 16
#define EDGELLM_KQ_PACK 2
#include "quant/quant_k_fast_impl.h"
#include "quant/quant_k_fast.h"

namespace edgellm {

const kquant_row_fns& kquant_generic_fns() {
    static const kquant_row_fns fns{"generic", kquant_generic::q2_k_row, kquant_generic::q3_k_row,
                                    kquant_generic::q4_k_row, kquant_generic::q5_k_row, kquant_generic::q6_k_row};
    return fns;
}

#if !defined(__x86_64__) && !defined(_M_X64)
const kquant_row_fns* kquant_avx2_fns() { return nullptr; }
const kquant_row_fns* kquant_avx512_fns() { return nullptr; }
#endif

const kquant_row_fns& kquant_best_fns() {
    static const kquant_row_fns& fns = kquant_avx512_fns() ? *kquant_avx512_fns()
                                       : kquant_avx2_fns() ? *kquant_avx2_fns()
                                                           : kquant_generic_fns();
    return fns;
}

void quantize_row_q2_k(const float* x, q2_k_block* y, int64_t n) { kquant_best_fns().q2_k(x, y, n); }
void quantize_row_q3_k(const float* x, q3_k_block* y, int64_t n) { kquant_best_fns().q3_k(x, y, n); }
void quantize_row_q4_k(const float* x, q4_k_block* y, int64_t n) { kquant_best_fns().q4_k(x, y, n); }
void quantize_row_q5_k(const float* x, q5_k_block* y, int64_t n) { kquant_best_fns().q5_k(x, y, n); }
void quantize_row_q6_k(const float* x, q6_k_block* y, int64_t n) { kquant_best_fns().q6_k(x, y, n); }

}  // namespace edgellm
