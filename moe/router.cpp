#include "moe/router.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "kernels/precision.h"
#include "moe/router_parts.h"
#include "src/core/error.h"

namespace moe {

void RouterState::resize(const Dims& d) {
  logits.resize(size_t(d.N * d.E));
  scores.resize(size_t(d.N * d.E));
  aux_probs.resize(size_t(d.N * d.E));
  lse.resize(size_t(d.N));
  select.resize(size_t(d.N * d.E));
  topk_idx.resize(size_t(d.N * d.K));
  topk_val.resize(size_t(d.N * d.K));
  weights.resize(size_t(d.N * d.K));
  dscores.resize(size_t(d.N * d.E));
  dlogits.resize(size_t(d.N * d.E));
}

static bool jitter_on(const MoeConfig& cfg, const RoutingContext& ctx) { return cfg.router_jitter > 0 && ctx.training; }

void router_forward(RouterState& r, RouterStats& stats, const float* xn, const float* Wr, const float* bias,
                    const Dims& d, const MoeConfig& cfg, const RoutingContext& ctx, const SumReducer& reduce_sum) {
  const bool jitter = jitter_on(cfg, ctx);
  if (jitter) {
    routing::jitter_forward(r, xn, d, cfg.router_jitter, ctx);
  } else {
    r.noise.clear();
    r.xr.clear();
  }
  r.logits.resize(size_t(d.N * d.E));
  const Fp32Scope fp32_logits;  // router logits, scores and softmax stay fp32 (docs/precision.md)
  ops::matmul_forward(r.logits.data(), jitter ? r.xr.data() : xn, Wr, d.N, d.D, d.E);
  routing::score_tokens(r, d.N, d.E, cfg.router == "sigmoid");
  if (cfg.router == "expert_choice") {
    routing::select_expert_choice(r, d, cfg, reduce_sum);
  } else {
    MOE_CHECK(cfg.router == "softmax" || cfg.router == "sigmoid", "router " + cfg.router);
    routing::select_token_choice(r, bias, d, cfg);
  }
  routing::accumulate_stats(stats, r, d, cfg);
}

void router_backward(float* dxn, float* dWr, RouterState& r, const float* dweights, const RouterStats& g,
                     const float* xn, const float* Wr, const Dims& d, const MoeConfig& cfg) {
  const int64_t N = d.N, E = d.E;
  r.dscores.assign(size_t(N * E), 0.0f);
  r.dlogits.assign(size_t(N * E), 0.0f);
  if (cfg.router == "expert_choice") routing::expert_choice_backward(r, dweights, d, cfg);
  else routing::token_choice_backward(r, dweights, d, cfg);

  routing::aux_gradient(r, g, d, cfg);
  if (loss_scale() != 1.0)  // the aux and z terms are part of the (scaled) loss, too
    for (float& v : r.daux) v *= float(loss_scale());
  const bool sigmoid = cfg.router == "sigmoid";
  for (int64_t t = 0; t < N; ++t) {
    float* ds = &r.dscores[size_t(t * E)];
    const float* da = &r.daux[size_t(t * E)];
    if (!sigmoid) {  // aux_probs are the softmax probs
      for (int64_t e = 0; e < E; ++e) ds[e] += da[e];
      continue;
    }
    // aux_probs q = s / sum(s): ds_e += (dq_e - sum_j dq_j q_j) / sum(s); then ds -> dlogits by s(1-s).
    const float* s = &r.scores[size_t(t * E)];
    const float* q = &r.aux_probs[size_t(t * E)];
    double ssum = 0, dot = 0;
    for (int64_t e = 0; e < E; ++e) {
      ssum += s[e];
      dot += double(da[e]) * q[e];
    }
    float* dl = &r.dlogits[size_t(t * E)];
    for (int64_t e = 0; e < E; ++e) dl[e] += (ds[e] + float((da[e] - dot) / ssum)) * s[e] * (1.0f - s[e]);
  }
  if (!sigmoid) ops::softmax_backward(r.dlogits.data(), r.dscores.data(), r.scores.data(), N, E);

  // z-loss: d/dlogits of coeff/T * lse^2 = coeff/T * 2 lse * softmax(logits).
  const float zc = float(cfg.z_loss_coeff * 2.0 / g.tokens * loss_scale());
  if (zc != 0.0f)
    for (int64_t t = 0; t < N; ++t) {
      const float s = zc * r.lse[size_t(t)];
      for (int64_t e = 0; e < E; ++e)
        r.dlogits[size_t(t * E + e)] += s * std::exp(r.logits[size_t(t * E + e)] - r.lse[size_t(t)]);
    }

  const Fp32Scope fp32_logits;
  if (r.noise.empty()) {
    ops::matmul_backward(dxn, dWr, r.dlogits.data(), xn, Wr, N, d.D, E);
    return;
  }
  // logits = (xn * noise) Wr^T: dxn += (dlogits Wr) * noise.
  r.dxr.assign(size_t(N * d.D), 0.0f);
  ops::matmul_backward(r.dxr.data(), dWr, r.dlogits.data(), r.xr.data(), Wr, N, d.D, E);
  if (dxn)
    for (int64_t i = 0; i < N * d.D; ++i) dxn[i] += r.dxr[size_t(i)] * r.noise[size_t(i)];
}

}  // namespace moe
