// The MoE feed-forward: route -> dispatch (permute by expert) -> experts -> combine, plus shared
// experts. Router statistics are reduced over the data-parallel group through `reduce_sum`, so the
// aux loss uses the global batch (layout invariance).
#pragma once
#include <functional>
#include <vector>

#include "moe/dispatcher.h"
#include "moe/experts.h"
#include "moe/load_stats.h"
#include "moe/router.h"
#include "src/model/dims.h"
#include "src/model/mlp.h"
#include "src/model/params.h"

namespace moe {

struct MoeLayerState {
  RoutingContext ctx;  // set by the owner before forward (layer at build, step each training step)
  RouterState router;
  RouterStats local, global;
  DispatchPlan plan;
  std::vector<float> expert_in;
  std::vector<int64_t> offsets;
  ExpertActs experts;
  SwigluActs shared;
  // backward scratch
  std::vector<float> dexpert_out, dexpert_in, dweights;
  ExpertScratch expert_scratch;
  SwigluScratch shared_scratch;
  LayerLoadStats stats;
  RouterLosses losses;
  void resize(const Dims& d);
};

// out (N, D) += MoE(xn). Fills s.stats and s.losses (global values); s.stats.bias is the balancing
// bias after this step's update (next_balancing_bias on the global counts).
void moe_layer_forward(float* out, MoeLayerState& s, const float* xn, const BlockParams& p, const Dims& d,
                       const MoeConfig& cfg, TokenDispatcher& dispatcher, const SumReducer& reduce_sum);
// dxn += dL/dxn given dout = dL/d(out); grads accumulate into g.
void moe_layer_backward(float* dxn, const float* dout, MoeLayerState& s, const float* xn, const BlockParams& p,
                        const BlockParams& g, const Dims& d, const MoeConfig& cfg, TokenDispatcher& dispatcher);

}  // namespace moe
