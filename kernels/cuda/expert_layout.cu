// One thread per output row; its expert by binary search over start.
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/expert_layout.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void expand_kernel(int32_t* slots_out, int32_t* rows_out, const int32_t* slots, const int32_t* rows,
                              const int64_t* offsets, const int64_t* start, int64_t E, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t lo = 0, hi = E - 1;  // the last expert e with start[e] <= i
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (start[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    const int64_t src = offsets[lo] + (i - start[lo]);
    const bool real = src < offsets[lo + 1];
    slots_out[i] = real ? slots[src] : -1;
    rows_out[i] = real ? rows[src] : -1;
  }
}

}  // namespace

void expand_expert_rows(int32_t* slots_out, int32_t* rows_out, const int32_t* slots, const int32_t* rows,
                        const int64_t* offsets, const int64_t* start, int64_t E, int64_t rows_out_count,
                        cudaStream_t stream) {
  MOE_CUDA_REQUIRE(E >= 1 && rows_out_count >= 0, "expand_expert_rows: E = " + std::to_string(E));
  if (rows_out_count == 0) return;
  expand_kernel<<<grid_for(rows_out_count, kThreads), kThreads, 0, stream>>>(slots_out, rows_out, slots, rows, offsets,
                                                                             start, E, rows_out_count);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
