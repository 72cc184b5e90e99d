// Capacity decisions over the whole micro-batch (layout invariant): which assignments an
// over-full expert keeps when its assignments, summed over every rank of the batch group, exceed
// the capacity. Ranks of the group hold consecutive slices of the batch in rank order.
#pragma once
#include <cstdint>

#include "src/comm/communicator.h"

namespace moe {

struct CapacityInput {
  const int32_t* by_expert;  // (N*K) assignment indices grouped by expert, token order within each
  const int64_t* start;      // (E+1) expert e's assignments are by_expert[start[e] .. start[e+1])
  const float* score;        // (N*K) selection score of each assignment
  int64_t N, K, E;
  int64_t capacity;          // per expert, over the whole batch
};

// Policy "position": the earliest global tokens. keep[e] = how many of expert e's local
// assignments (the first ones, in token order) survive. Collective over group (one all-gather).
void keep_earliest(const CapacityInput& in, comm::Communicator* group, int64_t* keep);

// Policy "probs": the highest scores among every rank's assignments to the expert, ties to the
// earlier global token. Reorders each over-full expert's span of by_expert so that the kept
// assignments come first (still in token order) and sets keep[e]. Collective over group (an
// all-gather of counts, then an all-gather-v of the (score, token) pairs of over-full experts).
void keep_highest_scores(const CapacityInput& in, comm::Communicator* group, int32_t* by_expert, int64_t* keep);

}  // namespace moe
