// AVX-512 build of the fast k-quant row quantizers (quant_k_fast_impl.h with 16-float lane
// vectors: one Q2_K/Q3_K/Q6_K super-block, or two Q4_K/Q5_K ones, per register); contraction stays
// off so results match the reference bit for bit.
#define EDGELLM_KQ_NS kquant_avx512
#define EDGELLM_KQ_VEC_BYTES 64
#define EDGELLM_KQ_PACK 2
#include "quant/quant_k_fast_impl.h"
#include "quant/quant_k_fast.h"

namespace edgellm {

const kquant_row_fns* kquant_avx512_fns() {
    static const kquant_row_fns* fns = []() -> const kquant_row_fns* {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
            !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
            return nullptr;
        static const kquant_row_fns f{"avx512", kquant_avx512::q2_k_row, kquant_avx512::q3_k_row,
                                      kquant_avx512::q4_k_row, kquant_avx512::q5_k_row, kquant_avx512::q6_k_row};
        return &f;
    }();
    return fns;
}

}  // namespace edgellm
