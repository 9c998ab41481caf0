// Device discovery and memory for the CUDA op set (cuda_ops.h): thin wrappers over the CUDA
// runtime that turn every failure into an edgellm::error naming the call and the CUDA error.
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace edgellm::kernels::cuda {

using detail::check;

bool available() {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();  // clear the error so later calls do not see it
        return false;
    }
    return n > 0;
}

std::string device_name() {
    if (!available()) return "";
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return "";
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) return "";
    return prop.name;
}

namespace {
bool mem_info(size_t* free_b, size_t* total_b) {
    *free_b = *total_b = 0;
    if (!available()) return false;
    if (cudaMemGetInfo(free_b, total_b) != cudaSuccess) {
        cudaGetLastError();
        *free_b = *total_b = 0;
        return false;
    }
    return true;
}
}  // namespace

size_t free_memory() {
    size_t f, t;
    mem_info(&f, &t);
    return f;
}

size_t total_memory() {
    size_t f, t;
    mem_info(&f, &t);
    return t;
}

void* alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();  // an allocation failure is not sticky; clear it
        throw error("CUDA: cannot allocate " + std::to_string(bytes) + " bytes of device memory: " +
                    cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
    }
    return p;
}

void free(void* p) {
    if (p) cudaFree(p);  // errors here come from earlier work; synchronize() reports those
}

void upload(void* dst_device, const void* src_host, size_t n) {
    if (n == 0) return;
    check(cudaMemcpy(dst_device, src_host, n, cudaMemcpyHostToDevice),
          ("upload of " + std::to_string(n) + " bytes").c_str());
}

void download(void* dst_host, const void* src_device, size_t n) {
    if (n == 0) return;
    check(cudaMemcpy(dst_host, src_device, n, cudaMemcpyDeviceToHost),
          ("download of " + std::to_string(n) + " bytes").c_str());
}

void copy(void* dst_device, const void* src_device, size_t n) {
    if (n == 0) return;
    check(cudaMemcpyAsync(dst_device, src_device, n, cudaMemcpyDeviceToDevice, 0),
          ("device copy of " + std::to_string(n) + " bytes").c_str());
}

void fill_bytes(void* dst_device, int byte, size_t n) {
    if (n == 0) return;
    check(cudaMemsetAsync(dst_device, byte, n, 0), ("memset of " + std::to_string(n) + " bytes").c_str());
}

void synchronize() {
    check(cudaDeviceSynchronize(), "kernel execution (reported at synchronize)");
    check(cudaGetLastError(), "kernel execution (reported at synchronize)");
}

size_t device_buffer::checked(size_t n) const {
    if (n > n_)
        throw error("cuda::device_buffer: copy of " + std::to_string(n) + " bytes into a buffer of " +
                    std::to_string(n_) + " bytes");
    return n;
}

}  // namespace edgellm::kernels::cuda
