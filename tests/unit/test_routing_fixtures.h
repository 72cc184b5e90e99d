// One MoE layer driven directly (no attention around it) and a plain-loops reference of every
// routing variant, for the Routing* tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "moe/moe_layer.h"
#include "src/train/model_state.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/model_fixtures.h"

namespace moe::test {

// Layer 1 of tiny_model_config is the MoE layer; the layer is fed random normalised inputs.
struct LayerCase {
  Config c;
  ModelState m;
  Dims d;
  std::vector<float> xn, dxn, out, wout;
  MoeLayerState s;
  LocalDispatcher disp;

  LayerCase(const Config& cfg, int64_t batch, uint64_t seed)
      : c(cfg), m(cfg), d(make_dims(cfg, batch)), xn(random_floats(d.N * d.D, seed + 1)),
        wout(random_floats(d.N * d.D, seed + 2)) {
    randomize(m, seed);
    s.resize(d);
  }
  const BlockParams& p() const { return m.p.blocks[1]; }
  const BlockParams& g() const { return m.g.blocks[1]; }
  // sum(out * wout) + aux + z: its gradient with respect to out is wout.
  double loss() {
    out.assign(size_t(d.N * d.D), 0.0f);
    moe_layer_forward(out.data(), s, xn.data(), p(), d, c.moe, disp, {});
    return weighted_sum(out.data(), wout.data(), d.N * d.D) + s.losses.aux + s.losses.z;
  }
  void grads() {
    std::fill(m.grads.begin(), m.grads.end(), 0.0f);
    dxn.assign(xn.size(), 0.0f);
    loss();
    moe_layer_backward(dxn.data(), wout.data(), s, xn.data(), p(), g(), d, c.moe, disp);
  }
  // The routing decision of the last forward, to tell when a finite-difference step crossed a tie.
  std::vector<int32_t> routing_map() const {
    std::vector<int32_t> r(s.plan.rows.begin(), s.plan.rows.end());
    for (int64_t o : s.plan.offsets) r.push_back(int32_t(o));
    return r;
  }
};

// ---- the reference: one token at a time, in double -----------------------------------------
struct RefRouting {
  std::vector<std::vector<int32_t>> experts;  // per token: chosen experts (token choice, best first)
  std::vector<std::vector<double>> weights;   // per token: combine weights, same order
  std::vector<std::vector<int32_t>> ec_tokens;  // expert choice: per expert, tokens in order
  std::vector<double> out;                    // (N, D) layer output
  std::vector<int64_t> counts;                // (E) assignments per expert
  double entropy = 0;                         // mean over tokens
};

inline double ref_silu(double a) { return a / (1.0 + std::exp(-a)); }

// out_row += w * W2 (silu(W1 x) * (W3 x)) with W1/W3 (F, D), W2 (D, F).
inline void ref_swiglu(double* out_row, double w, const float* x, const float* W1, const float* W3, const float* W2,
                       int64_t D, int64_t F) {
  std::vector<double> h(static_cast<size_t>(F));
  for (int64_t f = 0; f < F; ++f) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < D; ++i) {
      a += double(W1[f * D + i]) * x[i];
      b += double(W3[f * D + i]) * x[i];
    }
    h[size_t(f)] = ref_silu(a) * b;
  }
  for (int64_t i = 0; i < D; ++i) {
    double y = 0;
    for (int64_t f = 0; f < F; ++f) y += double(W2[i * F + f]) * h[size_t(f)];
    out_row[i] += w * y;
  }
}

// Indices of the k largest values, ties to the lower index.
inline std::vector<int32_t> ref_topk(const std::vector<double>& v, int64_t k) {
  std::vector<int32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return v[size_t(a)] > v[size_t(b)]; });
  idx.resize(size_t(k));
  return idx;
}

inline RefRouting reference_layer(const Config& c, const BlockParams& p, const float* xn, const Dims& d) {
  const MoeConfig& m = c.moe;
  const int64_t N = d.N, D = d.D, E = d.E, K = d.K;
  RefRouting r;
  r.out.assign(size_t(N * D), 0.0);
  r.counts.assign(size_t(E), 0);
  r.experts.resize(size_t(N));
  r.weights.resize(size_t(N));
  std::vector<std::vector<double>> probs(static_cast<size_t>(N));
  for (int64_t t = 0; t < N; ++t) {
    std::vector<double> logit(static_cast<size_t>(E)), score(static_cast<size_t>(E)), q(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e)
      for (int64_t i = 0; i < D; ++i) logit[size_t(e)] += double(p.router[e * D + i]) * xn[t * D + i];
    double mx = *std::max_element(logit.begin(), logit.end()), z = 0;
    for (double l : logit) z += std::exp(l - mx);
    for (int64_t e = 0; e < E; ++e) {
      const double sm = std::exp(logit[size_t(e)] - mx) / z;
      score[size_t(e)] = m.router == "sigmoid" ? 1.0 / (1.0 + std::exp(-logit[size_t(e)])) : sm;
    }
    const double ssum = std::accumulate(score.begin(), score.end(), 0.0);
    for (int64_t e = 0; e < E; ++e) {
      q[size_t(e)] = m.router == "sigmoid" ? score[size_t(e)] / ssum : score[size_t(e)];
      if (q[size_t(e)] > 0) r.entropy -= q[size_t(e)] * std::log(q[size_t(e)]) / double(N);
    }
    probs[size_t(t)] = score;
    if (m.router == "expert_choice") continue;
    const bool by_logits = m.router == "softmax" && m.score_order == "topk_then_softmax";
    std::vector<double> sel(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) sel[size_t(e)] = (by_logits ? logit : score)[size_t(e)] + p.router_bias[e];
    if (m.num_groups > 1) {
      const int64_t n = E / m.num_groups;
      std::vector<double> gs(static_cast<size_t>(m.num_groups));
      for (int64_t g = 0; g < m.num_groups; ++g) {
        std::vector<double> in(sel.begin() + g * n, sel.begin() + (g + 1) * n);
        std::sort(in.rbegin(), in.rend());
        gs[size_t(g)] = in[0] + (n >= 2 ? in[1] : 0.0);
      }
      std::vector<int32_t> keep = ref_topk(gs, m.topk_groups);
      for (int64_t g = 0; g < m.num_groups; ++g)
        if (std::find(keep.begin(), keep.end(), int32_t(g)) == keep.end())
          for (int64_t e = g * n; e < (g + 1) * n; ++e) sel[size_t(e)] = -1e300;
    }
    std::vector<int32_t> chosen = ref_topk(sel, K);
    std::vector<double> w;
    double sum = 0;
    for (int32_t e : chosen) {
      w.push_back(by_logits ? std::exp(logit[size_t(e)] - logit[size_t(chosen[0])]) : score[size_t(e)]);
      sum += w.back();
    }
    for (double& x : w) x = (by_logits || m.norm_topk_prob ? x / sum : x) * m.router_scale;
    r.experts[size_t(t)] = chosen;
    r.weights[size_t(t)] = w;
  }
  if (m.router == "expert_choice") {
    const double cf = m.capacity_factor > 0 ? m.capacity_factor : 1.0;
    const int64_t C = std::min<int64_t>(int64_t(std::ceil(cf * double(N * K) / double(E))), N);
    r.ec_tokens.resize(size_t(E));
    for (int64_t e = 0; e < E; ++e) {
      std::vector<double> col(static_cast<size_t>(N));
      for (int64_t t = 0; t < N; ++t) col[size_t(t)] = probs[size_t(t)][size_t(e)];
      std::vector<double> sorted = col;
      std::sort(sorted.rbegin(), sorted.rend());
      for (int64_t t = 0; t < N; ++t)
        if (float(col[size_t(t)]) >= float(sorted[size_t(C - 1)])) {  // ties at the C-th value all go in
          r.ec_tokens[size_t(e)].push_back(int32_t(t));
          r.experts[size_t(t)].push_back(int32_t(e));
          r.weights[size_t(t)].push_back(col[size_t(t)] * m.router_scale);
        }
    }
  }
  const int64_t Fe = d.Fe;
  for (int64_t t = 0; t < N; ++t) {
    for (size_t j = 0; j < r.experts[size_t(t)].size(); ++j) {
      const int64_t e = r.experts[size_t(t)][j];
      r.counts[size_t(e)]++;
      ref_swiglu(&r.out[size_t(t * D)], r.weights[size_t(t)][j], xn + t * D, p.experts_w1 + e * Fe * D,
                 p.experts_w3 + e * Fe * D, p.experts_w2 + e * D * Fe, D, Fe);
    }
    if (d.Fs > 0) ref_swiglu(&r.out[size_t(t * D)], 1.0, xn + t * D, p.shared_w1, p.shared_w3, p.shared_w2, D, d.Fs);
  }
  return r;
}

}  // namespace moe::test
