// Vectorised elementwise conversions (grid-stride, one element per thread step).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/cuda_check.h"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

template <typename O, typename I, bool kAccumulate>
__global__ void convert_kernel(O* out, const I* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (kAccumulate) out[i] = from_float<O>(to_float(out[i]) + to_float(inp[i]));
    else out[i] = from_float<O>(to_float(inp[i]));
  }
}

template <typename O, typename I, bool kAccumulate>
void launch(O* out, const I* inp, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  convert_kernel<O, I, kAccumulate><<<grid_for(n, kThreads, 8192), kThreads, 0, stream>>>(out, inp, n);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename I>
__global__ void add_kernel(float* out, const float* x, const I* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = x[i] + to_float(y[i]);
}

template <typename I>
void launch_add(float* out, const float* x, const I* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<I><<<grid_for(n, kThreads, 8192), kThreads, 0, stream>>>(out, x, y, n);
  MOE_CUDA_CHECK_LAUNCH();
}

__global__ void fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = value;
}

__global__ void sum_kernel(double* out, const float* x, int64_t n) {
  __shared__ double scratch[32];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  s = block_reduce(s, scratch, SumOp{}, 0.0);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

void convert(bf16* out, const float* inp, int64_t n, cudaStream_t stream) { launch<bf16, float, false>(out, inp, n, stream); }
void convert(float* out, const bf16* inp, int64_t n, cudaStream_t stream) { launch<float, bf16, false>(out, inp, n, stream); }
void accumulate(float* out, const bf16* inp, int64_t n, cudaStream_t stream) { launch<float, bf16, true>(out, inp, n, stream); }
void accumulate(float* out, const float* inp, int64_t n, cudaStream_t stream) { launch<float, float, true>(out, inp, n, stream); }

void residual_add(float* out, const float* x, const bf16* y, int64_t n, cudaStream_t stream) {
  launch_add(out, x, y, n, stream);
}
void residual_add(float* out, const float* x, const float* y, int64_t n, cudaStream_t stream) {
  launch_add(out, x, y, n, stream);
}

void fill(float* x, float value, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n, kThreads, 8192), kThreads, 0, stream>>>(x, value, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void sum_async(double* out_device, const float* x, int64_t n, cudaStream_t stream) {
  sum_kernel<<<1, 1024, 0, stream>>>(out_device, x, n);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
