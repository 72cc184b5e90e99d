// After each step: aux-loss-free balancing (bias += rate * sign(mean load - load), on global
// counts, so every rank applies the same update) and a summary of routing for metrics.
#pragma once
#include "src/model/transformer.h"
#include "src/train/config.h"
#include "src/train/model_state.h"

namespace moe {

struct StepRouting {
  double dropped_frac = 0;          // dropped assignments / all assignments, over MoE layers
  double worst_max_over_mean = 0;   // the most imbalanced layer's max/mean load
};

void update_balancing_bias(const Config& c, const Transformer& net, ModelState& model);
StepRouting summarize_routing(const Transformer& net);
StepRouting summarize_routing(const std::vector<const LayerLoadStats*>& layers);

}  // namespace moe
