// Routing statistics, the load-balancing losses (switch over the global batch, seq per sequence),
// the z-loss, and the aux-loss-free bias step. Formulas: docs/routing.md.
#include <cmath>

#include "moe/router_parts.h"
#include "src/core/error.h"

namespace moe {
namespace routing {

void accumulate_stats(RouterStats& s, RouterState& r, const Dims& d, const MoeConfig& cfg) {
  const int64_t N = d.N, E = d.E, K = d.K, T = d.T;
  MOE_CHECK(N % T == 0, "tokens are whole sequences");
  const int64_t B = N / T;
  s.counts.assign(size_t(E), 0.0);
  s.prob_sum.assign(size_t(E), 0.0);
  s.lse_sq_sum = s.entropy_sum = s.seq_aux_sum = 0;
  s.tokens = double(N);
  r.seq_counts.assign(size_t(B * E), 0.0);
  if (cfg.router == "expert_choice") {
    for (int64_t e = 0; e < E; ++e)
      for (int64_t i = r.ec_offsets[size_t(e)]; i < r.ec_offsets[size_t(e + 1)]; ++i)
        r.seq_counts[size_t(r.ec_rows[size_t(i)] / T * E + e)] += 1;
  } else {
    for (int64_t a = 0; a < N * K; ++a) r.seq_counts[size_t(a / K / T * E + r.topk_idx[size_t(a)])] += 1;
  }
  std::vector<double> seq_prob(static_cast<size_t>(E));
  for (int64_t b = 0; b < B; ++b) {
    std::fill(seq_prob.begin(), seq_prob.end(), 0.0);
    for (int64_t t = b * T; t < (b + 1) * T; ++t) {
      const float* q = &r.aux_probs[size_t(t * E)];
      double ent = 0;
      for (int64_t e = 0; e < E; ++e) {
        seq_prob[size_t(e)] += q[e];
        if (q[e] > 0) ent -= double(q[e]) * std::log(double(q[e]));
      }
      s.entropy_sum += ent;
      s.lse_sq_sum += double(r.lse[size_t(t)]) * r.lse[size_t(t)];
    }
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) {
      const double c = r.seq_counts[size_t(b * E + e)];
      s.counts[size_t(e)] += c;
      s.prob_sum[size_t(e)] += seq_prob[size_t(e)];
      dot += (c / double(T * K)) * (seq_prob[size_t(e)] / double(T));
    }
    s.seq_aux_sum += double(E) * dot;
  }
}

void aux_gradient(RouterState& r, const RouterStats& g, const Dims& d, const MoeConfig& cfg) {
  const int64_t E = d.E, K = d.K, T = d.T;
  r.daux.assign(size_t(d.N * E), 0.0f);
  if (cfg.aux_loss_type == "none" || cfg.aux_loss_coeff == 0) return;
  if (cfg.aux_loss_type == "switch") {
    // d/dq[t,e] of coeff * E * sum_e f_e * P_e = coeff * E * f_e / T_global (f held constant).
    const double Tg = g.tokens;
    for (int64_t e = 0; e < E; ++e) {
      const float v = float(cfg.aux_loss_coeff * double(E) * (g.counts[size_t(e)] / (Tg * double(K))) / Tg);
      for (int64_t t = 0; t < d.N; ++t) r.daux[size_t(t * E + e)] = v;
    }
    return;
  }
  MOE_CHECK(cfg.aux_loss_type == "seq", "aux_loss_type " + cfg.aux_loss_type);
  const double S = g.tokens / double(T);  // global sequences
  for (int64_t t = 0; t < d.N; ++t)
    for (int64_t e = 0; e < E; ++e)
      r.daux[size_t(t * E + e)] = float(cfg.aux_loss_coeff / S * double(E) *
                                        (r.seq_counts[size_t(t / T * E + e)] / double(T * K)) / double(T));
}

}  // namespace routing

RouterLosses router_losses(const RouterStats& g, const Dims& d, const MoeConfig& cfg) {
  RouterLosses out;
  const double T = g.tokens;
  if (cfg.aux_loss_type == "switch") {
    double dot = 0;
    for (int64_t e = 0; e < d.E; ++e)
      dot += (g.counts[size_t(e)] / (T * double(d.K))) * (g.prob_sum[size_t(e)] / T);
    out.aux = cfg.aux_loss_coeff * double(d.E) * dot;
  } else if (cfg.aux_loss_type == "seq") {
    out.aux = cfg.aux_loss_coeff * g.seq_aux_sum / (T / double(d.T));
  }
  out.z = cfg.z_loss_coeff * g.lse_sq_sum / T;
  return out;
}

std::vector<float> next_balancing_bias(const float* bias, const std::vector<int64_t>& load, int64_t assignments,
                                       double rate) {
  std::vector<float> out(bias, bias + load.size());
  const double mean = double(assignments) / double(load.size());
  const float step = float(rate);
  for (size_t e = 0; e < load.size(); ++e) {
    const double l = double(load[e]);
    out[e] += l < mean ? step : (l > mean ? -step : 0.0f);
  }
  return out;
}

}  // namespace moe
