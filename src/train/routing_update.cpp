#include "src/train/routing_update.h"

#include <algorithm>

namespace moe {

void update_balancing_bias(const Config& c, const Transformer& net, ModelState& model) {
  if (c.moe.bias_update_rate <= 0) return;
  const float rate = float(c.moe.bias_update_rate);
  size_t moe_index = 0;
  auto stats = net.load_stats();
  for (int64_t i = 0; i < c.model.n_layers; ++i) {
    if (!c.model.is_moe_layer(i)) continue;
    const LayerLoadStats& s = *stats[moe_index++];
    float* bias = model.p.blocks[size_t(i)].router_bias;
    const double mean = double(s.assignments) / double(s.tokens_per_expert.size());
    for (size_t e = 0; e < s.tokens_per_expert.size(); ++e) {
      const double load = double(s.tokens_per_expert[e]);
      bias[e] += load < mean ? rate : (load > mean ? -rate : 0.0f);
    }
  }
}

StepRouting summarize_routing(const Transformer& net) {
  StepRouting r;
  int64_t dropped = 0, assignments = 0;
  for (const LayerLoadStats* s : net.load_stats()) {
    dropped += s->dropped;
    assignments += s->assignments;
    r.worst_max_over_mean = std::max(r.worst_max_over_mean, s->max_over_mean());
  }
  r.dropped_frac = assignments > 0 ? double(dropped) / double(assignments) : 0.0;
  return r;
}

}  // namespace moe
