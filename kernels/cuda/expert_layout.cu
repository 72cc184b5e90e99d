// One thread per output row of the padded layout.
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/expert_layout.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void expand_kernel(int32_t* slots_out, int32_t* rows_out, const int32_t* slots, const int32_t* rows,
                              const int64_t* offsets, int64_t n, int64_t cap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i / cap, j = i % cap, src = offsets[e] + j;
    const bool real = src < offsets[e + 1];
    slots_out[i] = real ? slots[src] : -1;
    rows_out[i] = real ? rows[src] : -1;
  }
}

}  // namespace

void expand_expert_rows(int32_t* slots_out, int32_t* rows_out, const int32_t* slots, const int32_t* rows,
                        const int64_t* offsets, int64_t M, int64_t E, int64_t cap, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(cap >= 0 && E >= 0, "expand_expert_rows: cap = " + std::to_string(cap));
  if (cap == 0) {
    if (M == 0) return;
    MOE_CUDA_CHECK(cudaMemcpyAsync(slots_out, slots, sizeof(int32_t) * M, cudaMemcpyDeviceToDevice, stream));
    MOE_CUDA_CHECK(cudaMemcpyAsync(rows_out, rows, sizeof(int32_t) * M, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const int64_t n = E * cap;
  if (n == 0) return;
  expand_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(slots_out, rows_out, slots, rows, offsets, n, cap);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
