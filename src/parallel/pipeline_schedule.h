// Pipeline schedules: the order in which one stage runs the forward and backward passes of the
// step's micro-batches (docs/distributed.md, "Pipeline parallelism"). Pure functions, so the
// order and the in-flight bound are unit-tested without ranks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

enum class PipeOpKind { forward, backward };

struct PipeOp {
  PipeOpKind kind = PipeOpKind::forward;
  int64_t micro = 0;  // micro-batch index in [0, m)
  int64_t chunk = 0;  // model chunk of this rank (virtual stage chunk * pp + stage); 0 unless interleaved
  bool operator==(const PipeOp&) const = default;
};

// The ops of `stage` (0-based, of pp stages) for m micro-batches and v model chunks per stage.
// gpipe: F0 .. F(m-1), then B0 .. B(m-1).
// 1f1b: warm-up of w = min(pp - stage - 1, m) forwards, then one forward / one backward until every
// forward is issued, then the remaining backwards (cool-down). Backwards run in micro-batch order.
// 1f1b with v > 1 is Megatron's interleaved 1F1B (m a multiple of pp): the k-th forward runs
// micro-batch (k / (pp v)) pp + k % pp on chunk (k / pp) % v, the k-th backward the same
// micro-batch on chunk v - 1 - (k / pp) % v; warm-up 2 (pp - stage - 1) + (v - 1) pp forwards (all
// of them when m = pp).
// schedule is "gpipe" or "1f1b" (anything else is an internal error: the config checks it).
std::vector<PipeOp> pipeline_schedule(const std::string& schedule, int64_t pp, int64_t stage, int64_t m,
                                      int64_t v = 1);

// Most micro-batches of `chunk` whose forward has run and whose backward has not, at any point of
// `ops`: the activation slots the chunk needs (1f1b: min(m, pp - stage); gpipe: m).
int64_t max_in_flight(const std::vector<PipeOp>& ops, int64_t chunk = 0);

// The idle fraction of an ideal pipeline with equal stage times: (pp - 1) / (v m + pp - 1).
double theoretical_bubble(int64_t pp, int64_t m, int64_t v = 1);

}  // namespace moe
