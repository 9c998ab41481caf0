// AVX-512 op table. The AVX2 kernels already saturate memory bandwidth in decode on the machines
// we measure, so this table is not populated yet: it reports "unavailable" and dispatch falls
// through to AVX2. The file exists so that the AVX-512 build flags and dispatch path stay exercised.
#include "kernels/cpu/cpu.h"

namespace edgellm::kernels::cpu {

const isa_ops* avx512_ops() { return nullptr; }

}  // namespace edgellm::kernels::cpu
