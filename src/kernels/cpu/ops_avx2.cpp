// AVX2 + FMA + F16C op table (placeholder until the SIMD kernels land).
#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu {

const isa_ops* avx2_ops() { return nullptr; }

}  // namespace edgellm::kernels::cpu
