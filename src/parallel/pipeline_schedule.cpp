#include "src/parallel/pipeline_schedule.h"

#include <algorithm>

#include "src/core/error.h"

namespace moe {

std::vector<PipeOp> pipeline_schedule(const std::string& schedule, int64_t pp, int64_t stage, int64_t m) {
  MOE_CHECK(pp >= 1 && stage >= 0 && stage < pp && m >= 1, "bad pipeline shape");
  std::vector<PipeOp> ops;
  ops.reserve(size_t(2 * m));
  const auto fwd = [&](int64_t j) { ops.push_back({PipeOpKind::forward, j}); };
  const auto bwd = [&](int64_t j) { ops.push_back({PipeOpKind::backward, j}); };
  if (schedule == "gpipe") {
    for (int64_t j = 0; j < m; ++j) fwd(j);
    for (int64_t j = 0; j < m; ++j) bwd(j);
    return ops;
  }
  MOE_CHECK(schedule == "1f1b", "unknown pipeline schedule " + schedule);
  const int64_t warmup = std::min(pp - stage - 1, m);
  for (int64_t j = 0; j < warmup; ++j) fwd(j);
  for (int64_t j = warmup; j < m; ++j) {
    fwd(j);
    bwd(j - warmup);
  }
  for (int64_t j = m - warmup; j < m; ++j) bwd(j);
  return ops;
}

int64_t max_in_flight(const std::vector<PipeOp>& ops) {
  int64_t live = 0, peak = 0;
  for (const PipeOp& op : ops) {
    live += op.kind == PipeOpKind::forward ? 1 : -1;
    peak = std::max(peak, live);
  }
  return peak;
}

double theoretical_bubble(int64_t pp, int64_t m) { return double(pp - 1) / double(m + pp - 1); }

}  // namespace moe
