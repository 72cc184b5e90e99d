#include "src/parallel/pipeline_schedule.h"

#include <algorithm>

#include "src/core/error.h"

namespace moe {

namespace {

std::vector<PipeOp> interleaved_schedule(int64_t pp, int64_t stage, int64_t m, int64_t v) {
  MOE_CHECK(m % pp == 0, "interleaved 1F1B needs micro-batches in multiples of pp");
  const int64_t total = m * v;
  const int64_t warmup = m == pp ? total : std::min(2 * (pp - stage - 1) + (v - 1) * pp, total);
  const auto op = [&](PipeOpKind kind, int64_t k) {
    const int64_t in_group = (k / pp) % v;
    const int64_t chunk = kind == PipeOpKind::forward ? in_group : v - 1 - in_group;
    return PipeOp{kind, (k / (pp * v)) * pp + k % pp, chunk};
  };
  std::vector<PipeOp> ops;
  for (int64_t k = 0; k < warmup; ++k) ops.push_back(op(PipeOpKind::forward, k));
  for (int64_t k = warmup; k < total; ++k) {
    ops.push_back(op(PipeOpKind::forward, k));
    ops.push_back(op(PipeOpKind::backward, k - warmup));
  }
  for (int64_t k = total - warmup; k < total; ++k) ops.push_back(op(PipeOpKind::backward, k));
  return ops;
}

}  // namespace

std::vector<PipeOp> pipeline_schedule(const std::string& schedule, int64_t pp, int64_t stage, int64_t m,
                                      int64_t v) {
  MOE_CHECK(pp >= 1 && stage >= 0 && stage < pp && m >= 1 && v >= 1, "bad pipeline shape");
  if (v > 1) {
    MOE_CHECK(schedule == "1f1b", "virtual stages need the 1f1b schedule");
    return interleaved_schedule(pp, stage, m, v);
  }
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

int64_t max_in_flight(const std::vector<PipeOp>& ops, int64_t chunk) {
  int64_t live = 0, peak = 0;
  for (const PipeOp& op : ops) {
    if (op.chunk != chunk) continue;
    live += op.kind == PipeOpKind::forward ? 1 : -1;
    peak = std::max(peak, live);
  }
  return peak;
}

double theoretical_bubble(int64_t pp, int64_t m, int64_t v) { return double(pp - 1) / double(v * m + pp - 1); }

}  // namespace moe
