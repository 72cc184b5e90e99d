// top-k (one warp per row), row gather (one block per row), scatter-add with atomics and its
// backward (one block per source row).
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/routing.cuh"
#include "kernels/cuda/topk.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void topk_kernel(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < N; r += warps) {
    Pick prev{0.0f, -1, 0.0f};
    for (int64_t j = 0; j < k; ++j) {
      prev = warp_next_pick(scores + r * C, C, prev, [](int64_t) { return 0.0f; });
      if ((threadIdx.x & 31) == 0) {
        idx[r * k + j] = prev.idx;
        vals[r * k + j] = prev.val;
      }
    }
  }
}

template <typename T>
__global__ void gather_kernel(T* out, const T* inp, const int32_t* rows, int64_t M, int64_t D) {
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const T* src = inp + int64_t(rows[i]) * D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) out[i * D + j] = src[j];
  }
}

template <typename T>
__global__ void scatter_add_kernel(float* out, const T* inp, const int32_t* rows, const float* weights, int64_t M,
                                   int64_t D) {
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const float w = weights ? weights[i] : 1.0f;
    float* dst = out + int64_t(rows[i]) * D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) atomicAdd(dst + j, w * to_float(inp[i * D + j]));
  }
}

template <typename T>
__global__ void scatter_add_bwd_kernel(T* dinp, float* dweights, const float* dout, const T* inp,
                                       const int32_t* rows, const float* weights, int64_t M, int64_t D) {
  __shared__ float scratch[32];
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const float* g = dout + int64_t(rows[i]) * D;
    const float w = weights ? weights[i] : 1.0f;
    float dot = 0.0f;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      if (dinp) dinp[i * D + j] = from_float<T>(to_float(dinp[i * D + j]) + w * g[j]);
      if (dweights) dot += g[j] * to_float(inp[i * D + j]);
    }
    if (dweights) {
      dot = block_reduce(dot, scratch, SumOp{}, 0.0f);
      if (threadIdx.x == 0) dweights[i] += dot;
    }
  }
}

template <typename T>
void gather(T* out, const T* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream) {
  if (M == 0 || D == 0) return;
  gather_kernel<T><<<grid_for(M, 1), kThreads, 0, stream>>>(out, inp, rows, M, D);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void scatter_add(float* out, const T* inp, const int32_t* rows, const float* weights, int64_t M, int64_t D,
                 cudaStream_t stream) {
  if (M == 0 || D == 0) return;
  scatter_add_kernel<T><<<grid_for(M, 1), kThreads, 0, stream>>>(out, inp, rows, weights, M, D);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void scatter_add_bwd(T* dinp, float* dweights, const float* dout, const T* inp, const int32_t* rows,
                     const float* weights, int64_t M, int64_t D, cudaStream_t stream) {
  if (M == 0 || (!dinp && !dweights)) return;
  scatter_add_bwd_kernel<T><<<grid_for(M, 1), kThreads, 0, stream>>>(dinp, dweights, dout, inp, rows, weights, M, D);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void topk_forward(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k,
                  cudaStream_t stream) {
  MOE_CUDA_REQUIRE(k >= 1 && k <= C, "topk: k = " + std::to_string(k) + " must lie in [1, " + std::to_string(C) + "]");
  if (N == 0) return;
  topk_kernel<<<grid_for(N, kThreads / 32), kThreads, 0, stream>>>(idx, vals, scores, N, C, k);
  MOE_CUDA_CHECK_LAUNCH();
}

void gather_rows(float* out, const float* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream) {
  gather(out, inp, rows, M, D, stream);
}
void gather_rows(bf16* out, const bf16* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream) {
  gather(out, inp, rows, M, D, stream);
}

void scatter_add_rows(float* out, const float* inp, const int32_t* rows, const float* weights, int64_t M, int64_t D,
                      cudaStream_t stream) {
  scatter_add(out, inp, rows, weights, M, D, stream);
}
void scatter_add_rows(float* out, const bf16* inp, const int32_t* rows, const float* weights, int64_t M, int64_t D,
                      cudaStream_t stream) {
  scatter_add(out, inp, rows, weights, M, D, stream);
}

void scatter_add_rows_backward(float* dinp, float* dweights, const float* dout, const float* inp, const int32_t* rows,
                               const float* weights, int64_t M, int64_t D, cudaStream_t stream) {
  scatter_add_bwd(dinp, dweights, dout, inp, rows, weights, M, D, stream);
}
void scatter_add_rows_backward(bf16* dinp, float* dweights, const float* dout, const bf16* inp, const int32_t* rows,
                               const float* weights, int64_t M, int64_t D, cudaStream_t stream) {
  scatter_add_bwd(dinp, dweights, dout, inp, rows, weights, M, D, stream);
}

}  // namespace moe::cuda
