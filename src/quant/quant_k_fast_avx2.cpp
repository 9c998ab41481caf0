// AVX2 build of the fast k-quant row quantizers (quant_k_fast_impl.h with 8-float lane vectors);
// compiled with -mavx2 -mfma, but contraction stays off so results match the reference bit for bit.
#define EDGELLM_KQ_NS kquant_avx2
#define EDGELLM_KQ_VEC_BYTES 32
#define EDGELLM_KQ_PACK 1
#include "quant/quant_k_fast_impl.h"
#include "quant/quant_k_fast.h"

namespace edgellm {

const kquant_row_fns* kquant_avx2_fns() {
    static const kquant_row_fns* fns = []() -> const kquant_row_fns* {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2")) return nullptr;
        static const kquant_row_fns f{"avx2", kquant_avx2::q2_k_row, kquant_avx2::q3_k_row, kquant_avx2::q4_k_row,
                                      kquant_avx2::q5_k_row, kquant_avx2::q6_k_row};
        return &f;
    }();
    return fns;
}

}  // namespace edgellm
