// Embedding lookup (one block per token row) and its atomic scatter-add backward.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/embedding.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void embedding_fwd_kernel(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t D) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const float* src = table + int64_t(tokens[i]) * D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) out[i * D + j] = src[j];
  }
}

__global__ void embedding_bwd_kernel(float* dtable, const float* dout, const int32_t* tokens, int64_t N,
                                     int64_t D) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    float* dst = dtable + int64_t(tokens[i]) * D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) atomicAdd(dst + j, dout[i * D + j]);
  }
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t D,
                       cudaStream_t stream) {
  if (N == 0 || D == 0) return;
  embedding_fwd_kernel<<<grid_for(N, 1), kThreads, 0, stream>>>(out, tokens, table, N, D);
  MOE_CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t D,
                        cudaStream_t stream) {
  if (N == 0 || D == 0) return;
  embedding_bwd_kernel<<<grid_for(N, 1), kThreads, 0, stream>>>(dtable, dout, tokens, N, D);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
