// Token embedding lookup and its scatter-add backward.
#include <cstring>

#include "kernels/ops.h"

namespace moe::ops {

void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t D) {
#pragma omp parallel for schedule(static) if (N * D > (1 << 16))
  for (int64_t i = 0; i < N; ++i)
    std::memcpy(out + i * D, table + static_cast<int64_t>(tokens[i]) * D, sizeof(float) * D);
}

// A token can repeat, so rows of dtable receive several adds: threads split the columns (not the
// rows), which keeps the per-element add order fixed (row order) whatever the thread count.
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t D) {
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (D + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * D > (1 << 16))
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t j0 = blk * kBlock, j1 = j0 + kBlock < D ? j0 + kBlock : D;
    for (int64_t i = 0; i < N; ++i) {
      float* dst = dtable + static_cast<int64_t>(tokens[i]) * D;
      const float* src = dout + i * D;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace moe::ops
