// The router of a MoE layer (formulas in docs/routing.md):
//   token choice (moe.router softmax | sigmoid): each token picks top_k experts, optionally only
//     inside its best moe.topk_groups groups; the balancing bias shifts selection only;
//   expert choice: each expert picks its top-C tokens by softmax probability.
// Aux losses (switch over the global batch, or per sequence) and the z-loss use statistics that
// the caller reduces over the data-parallel group before router_losses().
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "src/model/dims.h"
#include "src/train/config.h"

namespace moe {

// Sums a vector over the data-parallel group in place (identity on one rank; may be empty).
using SumReducer = std::function<void(std::vector<double>&)>;

// Where this forward sits, for the router jitter (deterministic and layout invariant).
struct RoutingContext {
  uint64_t seed = 0;          // train.seed
  int64_t layer = 0;          // model layer index
  int64_t step = 0;           // optimizer step (from 0)
  int64_t token_offset = 0;   // global index of this rank's first token row
  bool training = false;      // jitter is applied only while training
};

struct RouterState {
  std::vector<float> noise;       // (N, D) jitter factors; empty when no jitter
  std::vector<float> xr;          // (N, D) jittered router input; empty when no jitter
  std::vector<float> logits;      // (N, E)
  std::vector<float> scores;      // (N, E) softmax probs or sigmoid scores
  std::vector<float> aux_probs;   // (N, E) per-token distribution of the aux loss and entropy
  std::vector<float> lse;         // (N) logsumexp of logits, for the z-loss
  std::vector<float> select;      // (N, E) what top-k ranks (+ bias; -inf outside chosen groups)
  std::vector<int32_t> topk_idx;  // (N, K) token choice: chosen experts, best first
  std::vector<float> topk_val;    // (N, K) their selection values
  // Combine weights: token choice (N, K) by slot t*K + j; expert choice (M) by permuted row.
  std::vector<float> weights;
  std::vector<int32_t> ec_rows;     // expert choice: (M) token row of each permuted row
  std::vector<int64_t> ec_offsets;  // expert choice: (E+1) expert e owns rows [off[e], off[e+1])
  int64_t ec_capacity = 0;          // expert choice: C
  int64_t ec_unrouted = 0;          // expert choice: local tokens no expert picked
  std::vector<double> seq_counts;   // (B, E) assignments per sequence (seq aux loss)
  std::vector<float> dscores, dlogits, daux, dxr;  // backward scratch
  void resize(const Dims& d);
};

// Sums over this rank's tokens; summed over ranks they are the global-batch statistics.
struct RouterStats {
  std::vector<double> counts;    // (E) assignments per expert (before capacity drops)
  std::vector<double> prob_sum;  // (E) sum over tokens of aux_probs[:, e]
  double lse_sq_sum = 0;         // sum over tokens of logsumexp^2
  double entropy_sum = 0;        // sum over tokens of the entropy of aux_probs
  double seq_aux_sum = 0;        // sum over sequences of E * sum_e f_e^s P_e^s (aux_loss_type seq)
  double tokens = 0;
};

struct RouterLosses {
  double aux = 0, z = 0;
};

void router_forward(RouterState& r, RouterStats& stats, const float* xn, const float* Wr, const float* bias,
                    const Dims& d, const MoeConfig& cfg, const RoutingContext& ctx, const SumReducer& reduce_sum);
// Losses from global statistics (global = reduced over the data-parallel group).
RouterLosses router_losses(const RouterStats& global, const Dims& d, const MoeConfig& cfg);
// dweights: dL/d(weights), the same layout as r.weights. Adds the aux and z-loss gradients (from
// the global statistics), then accumulates dxn and dWr.
void router_backward(float* dxn, float* dWr, RouterState& r, const float* dweights, const RouterStats& global,
                     const float* xn, const float* Wr, const Dims& d, const MoeConfig& cfg);

// Aux-loss-free balancing (DeepSeek-V3): bias_e + rate * sign(mean load - load_e), in fp32.
std::vector<float> next_balancing_bias(const float* bias, const std::vector<int64_t>& load, int64_t assignments,
                                       double rate);

}  // namespace moe
