#include "src/train/routing_update.h"

#include <algorithm>

#include "src/core/error.h"

namespace moe {

// The forward already computed the updated bias from the global counts (LayerLoadStats::bias,
// next_balancing_bias), so every rank writes the same fp32 values; here they become the parameter.
void update_balancing_bias(const Config& c, const Transformer& net, ModelState& model) {
  if (c.moe.bias_update_rate <= 0) return;
  size_t moe_index = 0;
  auto stats = net.load_stats();
  for (int64_t i = 0; i < c.model.n_layers; ++i) {
    if (!c.model.is_moe_layer(i)) continue;
    const LayerLoadStats& s = *stats[moe_index++];
    MOE_CHECK(int64_t(s.bias.size()) == c.moe.num_experts, "layer " + std::to_string(i) + " has no bias statistics");
    std::copy(s.bias.begin(), s.bias.end(), model.p.blocks[size_t(i)].router_bias);
  }
}

StepRouting summarize_routing(const Transformer& net) { return summarize_routing(net.load_stats()); }

StepRouting summarize_routing(const std::vector<const LayerLoadStats*>& layers) {
  StepRouting r;
  int64_t dropped = 0, assignments = 0;
  for (const LayerLoadStats* s : layers) {
    dropped += s->dropped;
    assignments += s->assignments;
    r.worst_max_over_mean = std::max(r.worst_max_over_mean, s->max_over_mean());
  }
  r.dropped_frac = assignments > 0 ? double(dropped) / double(assignments) : 0.0;
  return r;
}

}  // namespace moe
