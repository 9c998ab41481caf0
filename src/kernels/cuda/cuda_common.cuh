// Helpers shared by the CUDA kernel files: error checks that throw edgellm::error, launch-size
// arithmetic, and warp / block reductions.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "quant/ggml_type.h"

namespace edgellm::kernels::cuda::detail {

constexpr int k_warp = 32;

// Throws edgellm::error("CUDA <what>: <error name>: <error string>") when err is not success.
inline void check(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return;
    throw error(std::string("CUDA ") + what + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

// After a kernel launch: a bad configuration (too many blocks, too much shared memory) or a
// sticky error from earlier work shows up here.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline void require(bool ok, const std::string& msg) {
    if (!ok) throw error("cuda: " + msg);
}

inline unsigned blocks_for(int64_t n, int threads) {
    const int64_t b = (n + threads - 1) / threads;
    return static_cast<unsigned>(b < 1 ? 1 : b);
}

// Grid for grid-stride loops over n elements: enough blocks to fill any current GPU, capped so
// the count fits a grid dimension.
inline unsigned stride_blocks(int64_t n, int threads) {
    const int64_t b = (n + threads - 1) / threads;
    return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = k_warp / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = k_warp / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// Sum / max over the whole block (blockDim.x a multiple of 32, at most 1024). Every thread gets
// the result. `red` is shared scratch of 32 floats; the call ends with a barrier, so `red` can be
// reused by the next call.
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int lane = threadIdx.x % k_warp, warp = threadIdx.x / k_warp;
    const int n_warps = blockDim.x / k_warp;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < n_warps ? red[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

__device__ __forceinline__ float block_max(float v, float* red) {
    const int lane = threadIdx.x % k_warp, warp = threadIdx.x / k_warp;
    const int n_warps = blockDim.x / k_warp;
    v = warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < n_warps ? red[lane] : -INFINITY;
    t = warp_max(t);
    __syncthreads();
    return t;
}

}  // namespace edgellm::kernels::cuda::detail
