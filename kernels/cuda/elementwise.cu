// Elementwise kernels: grid-stride loops, one element per thread per step.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void add_kernel(float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    a[i] += b[i];
}

__global__ void scale_kernel(float* a, float s, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    a[i] *= s;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
__global__ void swiglu_fwd_kernel(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(a[i]);
    out[i] = from_float<T>(x * sigmoid(x) * to_float(b[i]));
  }
}

// d silu(a)/da = sig * (1 + a * (1 - sig))
template <typename T>
__global__ void swiglu_bwd_kernel(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(a[i]), g = to_float(dout[i]), sig = sigmoid(x);
    if (da) da[i] = from_float<T>(to_float(da[i]) + g * to_float(b[i]) * sig * (1.0f + x * (1.0f - sig)));
    if (db) db[i] = from_float<T>(to_float(db[i]) + g * x * sig);
  }
}

template <typename T>
void swiglu_fwd(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  swiglu_fwd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, a, b, n);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void swiglu_bwd(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0 || (!da && !db)) return;
  swiglu_bwd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(da, db, dout, a, b, n);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void add_inplace(float* a, const float* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(a, b, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void scale_inplace(float* a, float s, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(a, s, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void swiglu_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  swiglu_fwd(out, a, b, n, stream);
}
void swiglu_forward(bf16* out, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream) {
  swiglu_fwd(out, a, b, n, stream);
}
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n,
                     cudaStream_t stream) {
  swiglu_bwd(da, db, dout, a, b, n, stream);
}
void swiglu_backward(bf16* da, bf16* db, const bf16* dout, const bf16* a, const bf16* b, int64_t n,
                     cudaStream_t stream) {
  swiglu_bwd(da, db, dout, a, b, n, stream);
}

}  // namespace moe::cuda
