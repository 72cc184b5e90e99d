// Per-step routing statistics of one MoE layer, for metrics and the load-balance profile.
#pragma once
#include <cstdint>
#include <vector>

namespace moe {

struct LayerLoadStats {
  std::vector<int64_t> tokens_per_expert;  // global assignments before drops
  int64_t dropped = 0;                     // global assignments over capacity (expert choice: tokens no expert took)
  int64_t assignments = 0;                 // global tokens * K
  double entropy = 0;                      // mean router entropy (nats)
  double aux_loss = 0, z_loss = 0;
  std::vector<float> bias;                 // balancing bias after the step's update (the forward computes it)

  double max_over_mean() const {
    if (tokens_per_expert.empty() || assignments == 0) return 0;
    int64_t mx = 0;
    for (int64_t c : tokens_per_expert) mx = c > mx ? c : mx;
    return double(mx) * double(tokens_per_expert.size()) / double(assignments);
  }
};

}  // namespace moe
