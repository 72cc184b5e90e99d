#include "moe/expert_padding.h"

#include <algorithm>
#include <cmath>

namespace moe {

namespace {

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

ExpertBlocks layout(const int64_t* offsets, int64_t E, int64_t block) {
  ExpertBlocks b;
  b.block = block;
  b.start.assign(size_t(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = (offsets[e + 1] - offsets[e] + block - 1) / block;
    b.start[size_t(e + 1)] = b.start[size_t(e)] + n * block;
    b.max_blocks = std::max(b.max_blocks, n);
  }
  return b;
}

}  // namespace

int64_t expert_buffer_rows(int64_t M, double allowance) {
  if (allowance <= 0) return M;
  return std::max(M, static_cast<int64_t>(std::ceil(allowance * static_cast<double>(M))));
}

ExpertBlocks expert_blocks(const int64_t* offsets, int64_t E, int64_t buffer_rows, double allowance) {
  if (allowance <= 0 || E <= 0) return {};
  int64_t most = 0;
  for (int64_t e = 0; e < E; ++e) most = std::max(most, offsets[e + 1] - offsets[e]);
  if (most == 0) return {};
  // One block per expert (one strided-batched call per GEMM) when it fits.
  const int64_t whole = round_up(most, kExpertPadRows);
  if (E * whole <= buffer_rows) return layout(offsets, E, whole);
  // Else the largest block that always fits: sum_e ceil(n_e / b) b <= M + E (b - 1) <= buffer_rows.
  const int64_t M = offsets[E] - offsets[0];
  const int64_t block = (buffer_rows - M) / E / kExpertPadRows * kExpertPadRows;
  if (block < kExpertPadRows) return {};
  return layout(offsets, E, block);
}

}  // namespace moe
