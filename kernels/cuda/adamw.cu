// Fused AdamW and the deterministic double-precision sum of squares.
#include <cmath>

#include "kernels/cuda/adamw.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kSumBlocks = 1024;  // fixed, so the summation order never depends on the device

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float wd, float bc1, float bc2, float grad_scale,
                             __nv_bfloat16* copy) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grad[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / bc1, vhat = vi / bc2;
    const float p = param[i] - lr * (mhat / (sqrtf(vhat) + eps) + wd * param[i]);
    param[i] = p;
    if (copy) copy[i] = __float2bfloat16_rn(p);
  }
}

__global__ void sumsq_partial_kernel(double* partial, const float* x, int64_t n) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    s += static_cast<double>(x[i]) * x[i];
  s = block_reduce(s, scratch, SumOp{}, 0.0);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sumsq_final_kernel(double* out, const double* partial) {
  __shared__ double scratch[32];
  const double s = block_reduce(partial[threadIdx.x], scratch, SumOp{}, 0.0);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

void adamw_update_fused(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                        __nv_bfloat16* copy, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(step >= 1, "adamw_update: step counts from 1");
  if (n == 0) return;
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
  adamw_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(param, grad, m, v, n, lr, beta1, beta2, eps,
                                                               weight_decay, bc1, bc2, grad_scale, copy);
  MOE_CUDA_CHECK_LAUNCH();
}

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int64_t step, cudaStream_t stream) {
  adamw_update_fused(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step, 1.0f, nullptr, stream);
}

void sum_squares_async(double* out_device, const float* x, int64_t n, cudaStream_t stream) {
  void* partial = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&partial, sizeof(double) * kSumBlocks, stream));
  sumsq_partial_kernel<<<kSumBlocks, kThreads, 0, stream>>>(static_cast<double*>(partial), x, n);
  MOE_CUDA_CHECK_LAUNCH();
  sumsq_final_kernel<<<1, kSumBlocks, 0, stream>>>(out_device, static_cast<const double*>(partial));
  MOE_CUDA_CHECK_LAUNCH();
  MOE_CUDA_CHECK(cudaFreeAsync(partial, stream));
}

double sum_squares(const float* x, int64_t n, cudaStream_t stream) {
  void* d = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&d, sizeof(double), stream));
  sum_squares_async(static_cast<double*>(d), x, n, stream);
  double h = 0.0;
  MOE_CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof(double), cudaMemcpyDeviceToHost, stream));
  MOE_CUDA_CHECK(cudaFreeAsync(d, stream));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return h;
}

}  // namespace moe::cuda
