#include "moe/expert_padding.h"

#include <algorithm>
#include <cmath>

namespace moe {

int64_t expert_buffer_rows(int64_t M, double allowance) {
  if (allowance <= 0) return M;
  return std::max(M, static_cast<int64_t>(std::ceil(allowance * static_cast<double>(M))));
}

int64_t padded_expert_cap(const int64_t* offsets, int64_t E, int64_t buffer_rows, double allowance) {
  if (allowance <= 0 || E <= 0) return 0;
  int64_t most = 0;
  for (int64_t e = 0; e < E; ++e) most = std::max(most, offsets[e + 1] - offsets[e]);
  if (most == 0) return 0;
  const int64_t cap = (most + kExpertPadRows - 1) / kExpertPadRows * kExpertPadRows;
  return E * cap <= buffer_rows ? cap : 0;
}

}  // namespace moe
