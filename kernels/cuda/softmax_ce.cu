// One block per row: block max, then the exp sum in double (vocabularies reach 1e5 entries, like
// the CPU twin), then the elementwise pass.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/softmax_ce.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ float row_logsumexp(const T* x, int64_t n, float* fscratch, double* dscratch) {
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, to_float(x[j]));
  mx = block_reduce(mx, fscratch, MaxOp{}, -INFINITY);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(to_float(x[j]) - mx);
  sum = block_reduce(sum, dscratch, SumOp{}, 0.0);
  return mx + static_cast<float>(log(sum));
}

__global__ void softmax_fwd_kernel(float* probs, const float* logits, int64_t C) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const float* x = logits + blockIdx.x * C;
  float* p = probs + blockIdx.x * C;
  const float l = row_logsumexp(x, C, fs, ds);
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) p[j] = expf(x[j] - l);
}

__global__ void softmax_bwd_kernel(float* dlogits, const float* dprobs, const float* probs, int64_t C) {
  __shared__ double ds[32];
  const float *p = probs + blockIdx.x * C, *dp = dprobs + blockIdx.x * C;
  double pdp = 0.0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) pdp += static_cast<double>(p[j]) * dp[j];
  const float s = static_cast<float>(block_reduce(pdp, ds, SumOp{}, 0.0));
  float* dl = dlogits + blockIdx.x * C;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) dl[j] += p[j] * (dp[j] - s);
}

template <typename T>
__global__ void ce_fwd_kernel(float* losses, float* lse, const T* logits, const int32_t* targets, int64_t V) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const int64_t i = blockIdx.x;
  const T* x = logits + i * V;
  const float l = row_logsumexp(x, V, fs, ds);
  if (threadIdx.x == 0) {
    const int32_t t = targets[i];
    if (lse) lse[i] = l;
    losses[i] = (t >= 0 && t < V) ? l - to_float(x[t]) : NAN;
  }
}

template <typename T>
__global__ void ce_bwd_kernel(T* dlogits, const float* dlosses, const T* logits, const float* lse,
                              const int32_t* targets, int64_t V, bool accumulate) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const int64_t i = blockIdx.x;
  const T* x = logits + i * V;
  const float l = lse ? lse[i] : row_logsumexp(x, V, fs, ds);
  const float d = dlosses[i];
  const int32_t t = targets[i];
  T* dl = dlogits + i * V;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float onehot = j == t ? d : 0.0f;
    const float base = accumulate ? to_float(dl[j]) : 0.0f;  // (overwrite: never read)
    dl[j] = from_float<T>(base + d * expf(to_float(x[j]) - l) - onehot);
  }
}

unsigned rows_grid(int64_t N) {
  MOE_CUDA_REQUIRE(N <= INT32_MAX, "softmax/cross-entropy: too many rows");
  return static_cast<unsigned>(N);
}

template <typename T>
void ce_fwd(float* losses, float* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
            cudaStream_t stream) {
  if (N == 0) return;
  ce_fwd_kernel<T><<<rows_grid(N), kThreads, 0, stream>>>(losses, lse, logits, targets, V);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void ce_bwd(T* dlogits, const float* dlosses, const T* logits, const float* lse, const int32_t* targets, int64_t N,
            int64_t V, bool accumulate, cudaStream_t stream) {
  if (N == 0) return;
  ce_bwd_kernel<T><<<rows_grid(N), kThreads, 0, stream>>>(dlogits, dlosses, logits, lse, targets, V, accumulate);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void softmax_forward(float* probs, const float* logits, int64_t N, int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  softmax_fwd_kernel<<<rows_grid(N), kThreads, 0, stream>>>(probs, logits, C);
  MOE_CUDA_CHECK_LAUNCH();
}

void softmax_backward(float* dlogits, const float* dprobs, const float* probs, int64_t N, int64_t C,
                      cudaStream_t stream) {
  if (N == 0) return;
  softmax_bwd_kernel<<<rows_grid(N), kThreads, 0, stream>>>(dlogits, dprobs, probs, C);
  MOE_CUDA_CHECK_LAUNCH();
}

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V, cudaStream_t stream) {
  ce_fwd(losses, lse, logits, targets, N, V, stream);
}
void cross_entropy_forward(float* losses, float* lse, const bf16* logits, const int32_t* targets, int64_t N,
                           int64_t V, cudaStream_t stream) {
  ce_fwd(losses, lse, logits, targets, N, V, stream);
}
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, cudaStream_t stream, bool accumulate) {
  ce_bwd(dlogits, dlosses, logits, lse, targets, N, V, accumulate, stream);
}
void cross_entropy_backward(bf16* dlogits, const float* dlosses, const bf16* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, cudaStream_t stream, bool accumulate) {
  ce_bwd(dlogits, dlosses, logits, lse, targets, N, V, accumulate, stream);
}

}  // namespace moe::cuda
