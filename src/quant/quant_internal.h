// Helpers shared by the reference quantizer files (not part of the public quant API).
#pragma once
#include <cstdint>

#include "quant/ggml_type.h"

// The reference (de)quantizers must round exactly like ggml's scalar C code: forbid fusing a*b+c
// into one FMA, which would change the last bit on CPUs that have FMA.
#if defined(__clang__)
#define EDGELLM_NO_FP_CONTRACT _Pragma("STDC FP_CONTRACT OFF")
#elif defined(__GNUC__)
#define EDGELLM_NO_FP_CONTRACT _Pragma("GCC optimize(\"fp-contract=off\")")
#else
#define EDGELLM_NO_FP_CONTRACT
#endif

namespace edgellm {

// Throws edgellm::error when n is negative or not a whole number of blocks.
void check_row_length(ggml_type type, int64_t n, int64_t block_size);

}  // namespace edgellm
