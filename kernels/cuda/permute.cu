// The radix path: cub::DeviceHistogram::HistogramEven ->
// cub::DeviceScan::ExclusiveSum -> cub::DeviceRadixSort::SortPairs (keys: expert ids, values: slot
// ids; radix sort is stable and only the bits needed for E are sorted). The counting-sort path is
// in permute_counting.cu; permute_by_expert (permute.cuh) picks one.
#include <cub/device/device_histogram.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/permute.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void iota_kernel(int32_t* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = static_cast<int32_t>(i);
}

__global__ void rows_kernel(int32_t* rows, const int32_t* slots, int64_t n, int32_t k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    rows[i] = slots[i] / k;
}

int bits_for(int64_t E) {
  int b = 1;
  while ((int64_t(1) << b) < E) ++b;
  return b;
}

size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

}  // namespace

void permute_by_expert_radix(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids,
                             int64_t M, int64_t k, int64_t E, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(E >= 1 && k >= 1, "permute: E = " + std::to_string(E) + ", k = " + std::to_string(k));
  MOE_CUDA_REQUIRE(M >= 0 && M <= INT32_MAX && E < INT32_MAX, "permute: more than 2^31 slots");
  const int n = static_cast<int>(M), bins = static_cast<int>(E);
  // Sizes of the CUB temporaries, then one allocation for all scratch.
  size_t hist_bytes = 0, scan_bytes = 0, sort_bytes = 0;
  MOE_CUDA_CHECK(cub::DeviceHistogram::HistogramEven(nullptr, hist_bytes, expert_ids, static_cast<int*>(nullptr),
                                                      bins + 1, 0, bins, n, stream));
  MOE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, static_cast<const int*>(nullptr), offsets,
                                               bins + 1, stream));
  MOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, expert_ids, static_cast<int32_t*>(nullptr),
                                                 static_cast<const int32_t*>(nullptr), sorted_slots, n, 0,
                                                 bits_for(E), stream));
  const size_t temp_bytes = align_up(std::max(hist_bytes, std::max(scan_bytes, sort_bytes)));
  const size_t counts_bytes = align_up(sizeof(int) * (E + 1)), ids_bytes = align_up(sizeof(int32_t) * (M > 0 ? M : 1));
  void* raw = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&raw, temp_bytes + counts_bytes + 2 * ids_bytes, stream));
  char* base = static_cast<char*>(raw);
  void* temp = base;
  int* counts = reinterpret_cast<int*>(base + temp_bytes);
  int32_t* slots_in = reinterpret_cast<int32_t*>(base + temp_bytes + counts_bytes);
  int32_t* keys_out = reinterpret_cast<int32_t*>(base + temp_bytes + counts_bytes + ids_bytes);

  // counts[E] stays 0 so that the exclusive scan's last entry is the total.
  MOE_CUDA_CHECK(cudaMemsetAsync(counts, 0, sizeof(int) * (E + 1), stream));
  if (n > 0) {
    size_t bytes = temp_bytes;
    MOE_CUDA_CHECK(cub::DeviceHistogram::HistogramEven(temp, bytes, expert_ids, counts, bins + 1, 0, bins, n, stream));
  }
  size_t bytes = temp_bytes;
  MOE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, bytes, counts, offsets, bins + 1, stream));
  if (n > 0) {
    iota_kernel<<<grid_for(M, kThreads), kThreads, 0, stream>>>(slots_in, M);
    MOE_CUDA_CHECK_LAUNCH();
    bytes = temp_bytes;
    MOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, expert_ids, keys_out, slots_in, sorted_slots, n, 0,
                                                   bits_for(E), stream));
    rows_kernel<<<grid_for(M, kThreads), kThreads, 0, stream>>>(rows, sorted_slots, M, static_cast<int32_t>(k));
    MOE_CUDA_CHECK_LAUNCH();
  }
  MOE_CUDA_CHECK(cudaFreeAsync(raw, stream));
}

}  // namespace moe::cuda
