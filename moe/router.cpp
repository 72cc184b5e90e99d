#include "moe/router.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe {

void RouterState::resize(const Dims& d) {
  logits.resize(size_t(d.N * d.E));
  probs.resize(size_t(d.N * d.E));
  lse.resize(size_t(d.N));
  select.resize(size_t(d.N * d.E));
  topk_idx.resize(size_t(d.N * d.K));
  topk_sel.resize(size_t(d.N * d.K));
  weights.resize(size_t(d.N * d.K));
  dprobs.resize(size_t(d.N * d.E));
  dlogits.resize(size_t(d.N * d.E));
}

void router_forward(RouterState& r, RouterStats& stats, const float* xn, const float* Wr, const float* bias,
                    const Dims& d, const MoeConfig& cfg) {
  MOE_CHECK(cfg.router == "softmax", "router " + cfg.router);
  const int64_t N = d.N, E = d.E, K = d.K;
  ops::matmul_forward(r.logits.data(), xn, Wr, N, d.D, E);
  ops::softmax_forward(r.probs.data(), r.logits.data(), N, E);
  stats.counts.assign(size_t(E), 0.0);
  stats.prob_sum.assign(size_t(E), 0.0);
  stats.lse_sq_sum = stats.entropy_sum = 0;
  stats.tokens = double(N);
  for (int64_t t = 0; t < N; ++t) {
    const float* l = &r.logits[size_t(t * E)];
    const float* p = &r.probs[size_t(t * E)];
    float mx = *std::max_element(l, l + E);
    double s = 0, ent = 0;
    for (int64_t e = 0; e < E; ++e) {
      s += std::exp(double(l[e] - mx));
      stats.prob_sum[size_t(e)] += p[e];
      if (p[e] > 0) ent -= double(p[e]) * std::log(double(p[e]));
    }
    r.lse[size_t(t)] = float(mx + std::log(s));
    stats.lse_sq_sum += double(r.lse[size_t(t)]) * r.lse[size_t(t)];
    stats.entropy_sum += ent;
    for (int64_t e = 0; e < E; ++e) r.select[size_t(t * E + e)] = p[e] + (bias ? bias[e] : 0.0f);
  }
  ops::topk_forward(r.topk_idx.data(), r.topk_sel.data(), r.select.data(), N, E, K);
  for (int64_t t = 0; t < N; ++t) {
    float sum = 0;
    for (int64_t j = 0; j < K; ++j) {
      const int32_t e = r.topk_idx[size_t(t * K + j)];
      r.weights[size_t(t * K + j)] = r.probs[size_t(t * E + e)];
      sum += r.probs[size_t(t * E + e)];
      stats.counts[size_t(e)] += 1;
    }
    if (cfg.norm_topk_prob)
      for (int64_t j = 0; j < K; ++j) r.weights[size_t(t * K + j)] /= sum;
  }
}

RouterLosses router_losses(const RouterStats& g, const Dims& d, const MoeConfig& cfg) {
  RouterLosses out;
  const double T = g.tokens;
  double dot = 0;
  for (int64_t e = 0; e < d.E; ++e) dot += (g.counts[size_t(e)] / (T * double(d.K))) * (g.prob_sum[size_t(e)] / T);
  out.aux = cfg.aux_loss_coeff * double(d.E) * dot;
  out.z = cfg.z_loss_coeff * g.lse_sq_sum / T;
  return out;
}

void router_backward(float* dxn, float* dWr, RouterState& r, const float* dweights, const RouterStats& g,
                     const float* xn, const float* Wr, const Dims& d, const MoeConfig& cfg) {
  const int64_t N = d.N, E = d.E, K = d.K;
  const double T = g.tokens;
  std::fill(r.dprobs.begin(), r.dprobs.end(), 0.0f);
  std::fill(r.dlogits.begin(), r.dlogits.end(), 0.0f);
  // d aux / d probs[t, e] = coeff * E * f_e / T, with f_e = counts_e / (T K) held constant.
  std::vector<float> aux_grad(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e)
    aux_grad[size_t(e)] = float(cfg.aux_loss_coeff * double(E) * (g.counts[size_t(e)] / (T * double(K))) / T);
  for (int64_t t = 0; t < N; ++t) {
    float* dp = &r.dprobs[size_t(t * E)];
    for (int64_t e = 0; e < E; ++e) dp[e] = aux_grad[size_t(e)];
    const float* w = &r.weights[size_t(t * K)];
    const float* dw = &dweights[t * K];
    if (cfg.norm_topk_prob) {
      // w_j = p_j / S:  dp_j = (dw_j - sum_k dw_k w_k) / S
      float S = 0, dot = 0;
      for (int64_t j = 0; j < K; ++j) {
        S += r.probs[size_t(t * E + r.topk_idx[size_t(t * K + j)])];
        dot += dw[j] * w[j];
      }
      for (int64_t j = 0; j < K; ++j) dp[r.topk_idx[size_t(t * K + j)]] += (dw[j] - dot) / S;
    } else {
      for (int64_t j = 0; j < K; ++j) dp[r.topk_idx[size_t(t * K + j)]] += dw[j];
    }
  }
  ops::softmax_backward(r.dlogits.data(), r.dprobs.data(), r.probs.data(), N, E);
  // z-loss: d/dlogits of coeff/T * lse^2 = coeff/T * 2 lse * softmax.
  const float zc = float(cfg.z_loss_coeff * 2.0 / T);
  for (int64_t t = 0; t < N; ++t) {
    const float s = zc * r.lse[size_t(t)];
    for (int64_t e = 0; e < E; ++e) r.dlogits[size_t(t * E + e)] += s * r.probs[size_t(t * E + e)];
  }
  ops::matmul_backward(dxn, dWr, r.dlogits.data(), xn, Wr, N, d.D, E);
}

}  // namespace moe
