// Helpers of the Communicator interface shared by every implementation (MPI, threads, NCCL).
#include "src/comm/communicator.h"

namespace moe::comm {

std::vector<int64_t> exclusive_prefix(const int64_t* counts, int n) {
  std::vector<int64_t> out(size_t(n) + 1, 0);
  for (int i = 0; i < n; ++i) out[size_t(i) + 1] = out[size_t(i)] + counts[i];
  return out;
}

}  // namespace moe::comm
