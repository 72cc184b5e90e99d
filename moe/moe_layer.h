// The MoE feed-forward: route -> dispatch (permute by expert) -> experts -> combine, plus shared
// experts. Router statistics are reduced over the data-parallel group through `reduce_sum`, so the
// aux loss uses the global batch (layout invariance).
#pragma once
#include <functional>
#include <vector>

#include "moe/dispatcher.h"
#include "moe/etp_gather.h"
#include "moe/experts.h"
#include "moe/load_stats.h"
#include "moe/router.h"
#include "src/comm/communicator.h"
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
  std::vector<float> etp_partial;  // (N, D) this rank's part of the routed output (or its dxn) under etp
  // etp over ranks with different tokens (tp 1): the etp group's rows for the local experts.
  EtpGather etp_gather;
  std::vector<float> etp_rows, etp_out;  // (M_all, D) gathered inputs; (M, D) this rank's rows' outputs
  std::vector<float> etp_drows, etp_dx;  // (M_all, D) gathered d(out); partial d(in)
  ExpertScratch expert_scratch;
  SwigluScratch shared_scratch;
  LayerLoadStats stats;
  RouterLosses losses;
  void resize(const Dims& d);
};

// out (N, D) += MoE(xn). Fills s.stats and s.losses (global values); s.stats.bias is the balancing
// bias after this step's update (next_balancing_bias on the global counts).
// Expert tensor parallelism (etp non-null, size > 1; d.Fe = this rank's hidden units; each rank
// computes its hidden-unit slice of every local expert, so w2 gives a partial sum):
// - d.tp == d.etp (the etp group is the tp group, same tokens): the combined routed output is
//   all-reduced over etp (Megatron's row-parallel g), and backward all-reduces the partial
//   d(weights) and d(xn) of the routed path (f);
// - d.tp == 1 (the etp group spans dp ranks, different tokens): the dispatched rows are gathered
//   over etp before the experts and their partial outputs summed back after (EtpGather).
void moe_layer_forward(float* out, MoeLayerState& s, const float* xn, const BlockParams& p, const Dims& d,
                       const MoeConfig& cfg, TokenDispatcher& dispatcher, const SumReducer& reduce_sum,
                       comm::Communicator* etp = nullptr);
// dxn += dL/dxn given dout = dL/d(out); grads accumulate into g.
void moe_layer_backward(float* dxn, const float* dout, MoeLayerState& s, const float* xn, const BlockParams& p,
                        const BlockParams& g, const Dims& d, const MoeConfig& cfg, TokenDispatcher& dispatcher,
                        comm::Communicator* etp = nullptr);

}  // namespace moe
