// Emulation stand-ins for kernels/cuda/permute.cu (CUB does not run on the host): the radix path
// as the stable sort that CUB's radix sort returns (the entry's dispatch is inline in permute.cuh).
#include <algorithm>
#include <numeric>
#include <vector>
#include "kernels/cuda/permute.cuh"
namespace moe::cuda {
void permute_by_expert_radix(int32_t* sorted, int32_t* rows, int64_t* offsets, const int32_t* ids, int64_t M, int64_t k,
                             int64_t E, cudaStream_t) {
  std::vector<int32_t> s(M);
  std::iota(s.begin(), s.end(), 0);
  std::stable_sort(s.begin(), s.end(), [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  std::fill(offsets, offsets + E + 1, 0);
  for (int64_t i = 0; i < M; ++i) offsets[ids[i] + 1]++;
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
  for (int64_t i = 0; i < M; ++i) sorted[i] = s[i], rows[i] = int32_t(s[i] / k);
}
}  // namespace moe::cuda
