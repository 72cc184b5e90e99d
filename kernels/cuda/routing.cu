// top-k, one warp per row. The row gather and scatter-add are in gather_scatter.cu.
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

}  // namespace

void topk_forward(int32_t* idx, float* vals, const float* scores, int64_t N, int64_t C, int64_t k,
                  cudaStream_t stream) {
  MOE_CUDA_REQUIRE(k >= 1 && k <= C, "topk: k = " + std::to_string(k) + " must lie in [1, " + std::to_string(C) + "]");
  if (N == 0) return;
  topk_kernel<<<grid_for(N, kThreads / 32), kThreads, 0, stream>>>(idx, vals, scores, N, C, k);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
