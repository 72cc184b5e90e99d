// Internal to the router (moe/router*.cpp): the steps router_forward and router_backward chain.
#pragma once
#include "moe/router.h"

namespace moe::routing {

// Router input: xr = xn * U[1-eps, 1+eps] per element, from Philox keyed by (seed, layer, step)
// and counted by the global element index.
void jitter_forward(RouterState& r, const float* xn, const Dims& d, double eps, const RoutingContext& ctx);

// logits (N, E) -> scores (softmax or sigmoid), aux_probs, lse.
void score_tokens(RouterState& r, int64_t N, int64_t E, bool sigmoid);

// Token choice: select (+ bias, group mask) -> topk_idx, topk_val, weights (N, K).
void select_token_choice(RouterState& r, const float* bias, const Dims& d, const MoeConfig& cfg);
// dweights (N, K) -> dscores (softmax_then_topk, sigmoid) or dlogits (topk_then_softmax).
void token_choice_backward(RouterState& r, const float* dweights, const Dims& d, const MoeConfig& cfg);

// Expert choice: each expert keeps the tokens whose probability is at least its C-th largest
// over the global batch (found by bisection on the float bits through reduce_sum).
void select_expert_choice(RouterState& r, const Dims& d, const MoeConfig& cfg, const SumReducer& reduce_sum);
// dweights (M) -> dscores.
void expert_choice_backward(RouterState& r, const float* dweights, const Dims& d, const MoeConfig& cfg);

// Local statistics of the routing just made (counts from topk_idx or the expert-choice rows).
void accumulate_stats(RouterStats& s, RouterState& r, const Dims& d, const MoeConfig& cfg);
// d(aux loss)/d(aux_probs), from the global statistics, into r.daux (N, E).
void aux_gradient(RouterState& r, const RouterStats& g, const Dims& d, const MoeConfig& cfg);

}  // namespace moe::routing
