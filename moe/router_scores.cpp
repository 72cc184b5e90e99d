// Token-choice routing: scoring (softmax or sigmoid), group-limited top-k, combine weights.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/ops.h"
#include "moe/router_parts.h"
#include "src/core/error.h"

namespace moe::routing {
namespace {

bool ranks_logits(const MoeConfig& cfg) { return cfg.router == "softmax" && cfg.score_order == "topk_then_softmax"; }

// DeepSeek-V3 group-limited routing on one token's row: a group's score is the sum of its top-2
// values (top-1 for groups of one expert); experts outside the best topk_groups groups get -inf.
void mask_groups(float* sel, int64_t E, int64_t groups, int64_t keep) {
  const int64_t n = E / groups;
  std::vector<float> gscore(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    float a = -std::numeric_limits<float>::infinity(), b = a;  // best and second best
    for (int64_t e = g * n; e < (g + 1) * n; ++e) {
      if (sel[e] > a) {
        b = a;
        a = sel[e];
      } else if (sel[e] > b) {
        b = sel[e];
      }
    }
    gscore[size_t(g)] = n >= 2 ? a + b : a;
  }
  std::vector<int32_t> best(static_cast<size_t>(keep));
  std::vector<float> best_val(static_cast<size_t>(keep));
  ops::topk_forward(best.data(), best_val.data(), gscore.data(), 1, groups, keep);
  std::vector<char> chosen(size_t(groups), 0);
  for (int32_t g : best) chosen[size_t(g)] = 1;
  for (int64_t g = 0; g < groups; ++g)
    if (!chosen[size_t(g)])
      std::fill(sel + g * n, sel + (g + 1) * n, -std::numeric_limits<float>::infinity());
}

}  // namespace

void score_tokens(RouterState& r, int64_t N, int64_t E, bool sigmoid) {
  r.scores.resize(size_t(N * E));
  r.aux_probs.resize(size_t(N * E));
  r.lse.resize(size_t(N));
  if (!sigmoid) ops::softmax_forward(r.scores.data(), r.logits.data(), N, E);
  for (int64_t t = 0; t < N; ++t) {
    const float* l = &r.logits[size_t(t * E)];
    float* s = &r.scores[size_t(t * E)];
    float* q = &r.aux_probs[size_t(t * E)];
    const float mx = *std::max_element(l, l + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += std::exp(double(l[e] - mx));
    r.lse[size_t(t)] = float(mx + std::log(sum));
    if (!sigmoid) {
      std::copy(s, s + E, q);
      continue;
    }
    // The aux loss and the entropy see the sigmoid scores normalised per token (DeepSeek-V3).
    double ssum = 0;
    for (int64_t e = 0; e < E; ++e) {
      s[e] = 1.0f / (1.0f + std::exp(-l[e]));
      ssum += s[e];
    }
    for (int64_t e = 0; e < E; ++e) q[e] = float(s[e] / ssum);
  }
}

void select_token_choice(RouterState& r, const float* bias, const Dims& d, const MoeConfig& cfg) {
  const int64_t N = d.N, E = d.E, K = d.K;
  const bool by_logits = ranks_logits(cfg);
  const std::vector<float>& base = by_logits ? r.logits : r.scores;
  r.select.resize(size_t(N * E));
  r.topk_idx.resize(size_t(N * K));
  r.topk_val.resize(size_t(N * K));
  r.weights.resize(size_t(N * K));
  for (int64_t t = 0; t < N; ++t) {
    float* sel = &r.select[size_t(t * E)];
    for (int64_t e = 0; e < E; ++e) sel[e] = base[size_t(t * E + e)] + (bias ? bias[e] : 0.0f);
    if (cfg.num_groups > 1 && cfg.topk_groups < cfg.num_groups) mask_groups(sel, E, cfg.num_groups, cfg.topk_groups);
  }
  ops::topk_forward(r.topk_idx.data(), r.topk_val.data(), r.select.data(), N, E, K);
  const float scale = float(cfg.router_scale);
  for (int64_t t = 0; t < N; ++t) {
    const int32_t* idx = &r.topk_idx[size_t(t * K)];
    float* w = &r.weights[size_t(t * K)];
    if (by_logits) {  // softmax over the chosen logits
      const float* l = &r.logits[size_t(t * E)];
      float mx = l[idx[0]];
      for (int64_t j = 1; j < K; ++j) mx = std::max(mx, l[idx[j]]);
      float sum = 0;
      for (int64_t j = 0; j < K; ++j) sum += (w[j] = std::exp(l[idx[j]] - mx));
      for (int64_t j = 0; j < K; ++j) w[j] /= sum;
    } else {
      float sum = 0;
      for (int64_t j = 0; j < K; ++j) sum += (w[j] = r.scores[size_t(t * E + idx[j])]);
      if (cfg.norm_topk_prob)
        for (int64_t j = 0; j < K; ++j) w[j] /= sum;
    }
    for (int64_t j = 0; j < K; ++j) w[j] *= scale;
  }
}

void token_choice_backward(RouterState& r, const float* dweights, const Dims& d, const MoeConfig& cfg) {
  const int64_t E = d.E, K = d.K;
  const bool by_logits = ranks_logits(cfg);
  const float scale = float(cfg.router_scale);
  for (int64_t t = 0; t < d.N; ++t) {
    const int32_t* idx = &r.topk_idx[size_t(t * K)];
    const float* w = &r.weights[size_t(t * K)];
    const float* dw = &dweights[t * K];
    // w = scale * u: dL/du = scale * dw, and u = w / scale.
    float dot = 0;
    for (int64_t j = 0; j < K; ++j) dot += dw[j] * w[j];  // = sum_j du_j u_j
    if (by_logits) {  // u = softmax(chosen logits): dl_j = u_j (du_j - sum du u)
      for (int64_t j = 0; j < K; ++j) r.dlogits[size_t(t * E + idx[j])] += w[j] / scale * (scale * dw[j] - dot);
    } else if (cfg.norm_topk_prob) {  // u_j = s_j / S: ds_j = (du_j - sum du u) / S
      float S = 0;
      for (int64_t j = 0; j < K; ++j) S += r.scores[size_t(t * E + idx[j])];
      for (int64_t j = 0; j < K; ++j) r.dscores[size_t(t * E + idx[j])] += (scale * dw[j] - dot) / S;
    } else {
      for (int64_t j = 0; j < K; ++j) r.dscores[size_t(t * E + idx[j])] += scale * dw[j];
    }
  }
}

}  // namespace moe::routing
