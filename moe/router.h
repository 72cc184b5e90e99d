// Token-choice router: logits = xn Wr^T (fp32), probs = softmax(logits), top-k of probs (+ the
// balancing bias, for selection only), combine weights = top-k probs (renormalised if configured).
// Aux losses use global-batch statistics (DESIGN.md): the caller reduces RouterStats over the
// data-parallel group before router_losses().
#pragma once
#include <cstdint>
#include <vector>

#include "src/model/dims.h"
#include "src/train/config.h"

namespace moe {

struct RouterState {
  std::vector<float> logits;      // (N, E)
  std::vector<float> probs;       // (N, E)
  std::vector<float> lse;         // (N) logsumexp of logits, for the z-loss
  std::vector<float> select;      // (N, E) probs + bias: what top-k ranks
  std::vector<int32_t> topk_idx;  // (N, K)
  std::vector<float> topk_sel;    // (N, K) selection scores of the chosen experts
  std::vector<float> weights;     // (N, K) combine weights
  std::vector<float> dprobs;      // (N, E) backward scratch
  std::vector<float> dlogits;     // (N, E) backward scratch
  void resize(const Dims& d);
};

// Sums over this rank's tokens; summed over ranks they are the global-batch statistics.
struct RouterStats {
  std::vector<double> counts;    // (E) assignments per expert (before capacity drops)
  std::vector<double> prob_sum;  // (E) sum over tokens of probs[:, e]
  double lse_sq_sum = 0;         // sum over tokens of logsumexp^2
  double entropy_sum = 0;        // sum over tokens of the router entropy
  double tokens = 0;
};

struct RouterLosses {
  double aux = 0, z = 0;
};

void router_forward(RouterState& r, RouterStats& stats, const float* xn, const float* Wr, const float* bias,
                    const Dims& d, const MoeConfig& cfg);
// Losses from global statistics (global = reduced over the data-parallel group).
RouterLosses router_losses(const RouterStats& global, const Dims& d, const MoeConfig& cfg);
// dweights (N, K): dL/d(combine weights). Adds the aux and z-loss gradients (with the global token
// count and global counts), then accumulates dxn and dWr.
void router_backward(float* dxn, float* dWr, RouterState& r, const float* dweights, const RouterStats& global,
                     const float* xn, const float* Wr, const Dims& d, const MoeConfig& cfg);

}  // namespace moe
