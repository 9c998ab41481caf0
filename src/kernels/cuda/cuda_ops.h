// The CUDA op set: the same ops as the CPU kernels (kernels/kernels.h) on device memory, plus the
// device runtime calls they need. A plain C++ header (no CUDA types) so CPU code can include it;
// the definitions exist only in builds with EDGELLM_HAVE_CUDA (src/kernels/cuda/*.cu).
//
// Every pointer an op takes is a device pointer; layouts are row-major as in kernels.h. Ops are
// queued on the legacy default stream and return before the GPU finishes; download() and
// synchronize() wait. A bad argument throws edgellm::error before anything is queued; a failed
// launch throws with the CUDA error string.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/kernels.h"
#include "quant/ggml_type.h"

namespace edgellm::kernels::cuda {

// ---- device and memory ----

// True only when the CUDA runtime finds at least one device (no driver or no GPU: false; never
// throws).
bool available();
// Name of the current device ("" when none), and its free / total memory in bytes (0 when none).
std::string device_name();
size_t free_memory();
size_t total_memory();

// Device allocation; throws edgellm::error naming the byte count and the CUDA error on failure.
// alloc(0) returns nullptr. free(nullptr) does nothing; free never throws.
void* alloc(size_t bytes);
void free(void* p);
// Blocking copies of n bytes host -> device and device -> host, and device -> device (queued).
void upload(void* dst_device, const void* src_host, size_t n);
void download(void* dst_host, const void* src_device, size_t n);
void copy(void* dst_device, const void* src_device, size_t n);
// Sets n bytes of device memory to `byte` (queued).
void fill_bytes(void* dst_device, int byte, size_t n);
// Waits for all queued work; throws edgellm::error naming a pending kernel error.
void synchronize();

// Owns one device allocation (move-only).
class device_buffer {
public:
    device_buffer() = default;
    explicit device_buffer(size_t bytes) : p_(alloc(bytes)), n_(bytes) {}
    ~device_buffer() { cuda::free(p_); }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
    device_buffer& operator=(device_buffer&& o) noexcept {
        if (this != &o) {
            cuda::free(p_);
            p_ = o.p_, n_ = o.n_;
            o.p_ = nullptr, o.n_ = 0;
        }
        return *this;
    }

    void* data() const { return p_; }
    template <class T>
    T* as() const { return static_cast<T*>(p_); }
    size_t size() const { return n_; }
    // Copies n bytes (at most size()) from / to host memory.
    void upload_from(const void* src, size_t n) { upload(p_, src, checked(n)); }
    void download_to(void* dst, size_t n) const { download(dst, p_, checked(n)); }

private:
    size_t checked(size_t n) const;
    void* p_ = nullptr;
    size_t n_ = 0;
};

// ---- ops ----

// True for the weight types mul_mat and get_row take: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool supports(ggml_type wt);

// y[t][r] = sum_c w[r][c] * x[t][c]; w [n_rows][n_cols] of wt, x [n_tokens][n_cols] f32,
// y [n_tokens][n_rows] f32. n_cols must be a whole number of wt's blocks. Up to
// k_mul_mat_vec_max_tokens tokens a warp per row dequantizes on the fly (decode); more tokens
// take a tiled shared-memory GEMM (prefill). Both accumulate exact f32 dequantized weights in f32.
constexpr int64_t k_mul_mat_vec_max_tokens = 8;
void mul_mat(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens,
             float* y);

// Optional int8 decode path for Q4_0 and Q8_0 weights (dp4a, needs sm_61+; every listed arch
// has it): x is quantized to q8_1 blocks (f16 scale, f16 scale*sum, 32 int8) into `scratch`
// (mul_mat_int8_scratch_bytes(n_cols, n_tokens) bytes of device memory), then integer dot
// products are scaled per block. Adds activation-rounding noise like the CPU path (NMSE ~3e-5
// against the exact product). n_tokens up to k_mul_mat_vec_max_tokens.
bool supports_int8(ggml_type wt);
size_t mul_mat_int8_scratch_bytes(int64_t n_cols, int64_t n_tokens);
void mul_mat_int8(ggml_type wt, const void* w, int64_t n_rows, int64_t n_cols, const float* x, int64_t n_tokens,
                  float* y, void* scratch);

// y = x / sqrt(mean(x^2) + eps) * weight for each of n_tokens rows of n.
void rms_norm(const float* x, const float* weight, float* y, int64_t n, int64_t n_tokens, float eps);

// RoPE in place on x [n_tokens][n_heads][head_dim]; token t is at positions[t] (device). Same
// math as kernels::ref::rope (normal: pairs (2i, 2i+1); neox: (i, i + n_rot/2); dims past n_rot
// unchanged; freq_factors [n_rot/2] on the device, or null).
void rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t n_rot, const int32_t* positions,
          float freq_base, float freq_scale, const float* freq_factors, rope_mode mode);

// In-place softmax of each of n_rows rows of n.
void softmax(float* x, int64_t n_rows, int64_t n);
// y = silu(gate) * up over n elements.
void swiglu(const float* gate, const float* up, float* y, int64_t n);
// y += x over n elements.
void add(float* y, const float* x, int64_t n);

// Embedding lookup: dst[i] = row rows[i] of w ([*][n_cols] of wt) as f32, for i < n_rows_out.
// rows is device memory and is not range-checked here.
void get_row(ggml_type wt, const void* w, int64_t n_cols, const int32_t* rows, int64_t n_rows_out, float* dst);

// Attention of n_tokens query tokens over a contiguous KV cache in device memory.
//   q: [n_tokens][n_head][head_dim] f32; k_cache, v_cache: rows of [n_head_kv][head_dim] of
//   kv_type (F32 or F16); n_kv: device [n_tokens], token t attends to rows 0..n_kv[t]-1 (a
//   token with n_kv <= 0 gets zeros); out: [n_tokens][n_head][head_dim] f32.
// Query head h reads KV head h / (n_head / n_head_kv); scores are scaled by `scale`.
// head_dim up to k_attention_max_head_dim.
constexpr int64_t k_attention_max_head_dim = 256;
void attention(const float* q, const void* k_cache, const void* v_cache, ggml_type kv_type, int64_t n_head,
               int64_t n_head_kv, int64_t head_dim, const int32_t* n_kv, int64_t n_tokens, float scale, float* out);

// Writes k and v ([n_tokens][kv_dim] f32) to cache row rows[t] (device) of k_cache / v_cache
// (rows of kv_dim elements of kv_type: F32, or F16 rounded to nearest even).
void store_kv(const float* k, const float* v, int64_t n_tokens, int64_t kv_dim, void* k_cache, void* v_cache,
              ggml_type kv_type, const int32_t* rows);

}  // namespace edgellm::kernels::cuda
