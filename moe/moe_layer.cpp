#include "moe/moe_layer.h"

#include <algorithm>

namespace moe {

void MoeLayerState::resize(const Dims& d) {
  router.resize(d);
  dweights.resize(size_t(d.N * d.K));
  if (d.Fs > 0) {
    shared.resize(d.N, d.Fs);
    shared_scratch.resize(d.N, d.Fs);
  }
}

static void reduce_router_stats(RouterStats& global, const RouterStats& local, int64_t E,
                                const SumReducer& reduce_sum) {
  // One collective per layer: counts, prob sums, then the scalars.
  std::vector<double> buf;
  buf.reserve(size_t(2 * E + 3));
  buf.insert(buf.end(), local.counts.begin(), local.counts.end());
  buf.insert(buf.end(), local.prob_sum.begin(), local.prob_sum.end());
  buf.push_back(local.lse_sq_sum);
  buf.push_back(local.entropy_sum);
  buf.push_back(local.tokens);
  if (reduce_sum) reduce_sum(buf);
  global.counts.assign(buf.begin(), buf.begin() + E);
  global.prob_sum.assign(buf.begin() + E, buf.begin() + 2 * E);
  global.lse_sq_sum = buf[size_t(2 * E)];
  global.entropy_sum = buf[size_t(2 * E + 1)];
  global.tokens = buf[size_t(2 * E + 2)];
}

void moe_layer_forward(float* out, MoeLayerState& s, const float* xn, const BlockParams& p, const Dims& d,
                       const MoeConfig& cfg, TokenDispatcher& dispatcher, const SumReducer& reduce_sum) {
  router_forward(s.router, s.local, xn, p.router, p.router_bias, d, cfg);
  reduce_router_stats(s.global, s.local, d.E, reduce_sum);
  s.losses = router_losses(s.global, d, cfg);

  plan_dispatch(s.plan, s.router.topk_idx.data(), s.router.topk_sel.data(), d.N, d.K, d.E, cfg.capacity_factor,
                int64_t(s.global.tokens), cfg.drop_policy);
  dispatcher.dispatch_preprocess(s.plan);
  dispatcher.dispatch(xn, d.D);
  dispatcher.dispatch_postprocess(s.expert_in, s.offsets);
  experts_forward(s.experts, s.expert_in.data(), p.experts_w1, p.experts_w3, p.experts_w2, s.offsets.data(), d.E,
                  d.D, d.Fe);
  dispatcher.combine_preprocess(s.experts.out.data(), s.router.weights.data());
  dispatcher.combine();
  dispatcher.combine_postprocess(out);
  if (d.Fs > 0) swiglu_mlp_forward(out, s.shared, xn, p.shared_w1, p.shared_w3, p.shared_w2, d.N, d.D, d.Fs);

  s.stats.tokens_per_expert.assign(s.global.counts.begin(), s.global.counts.end());
  std::vector<double> dropped{double(s.plan.dropped)};
  if (reduce_sum) reduce_sum(dropped);
  s.stats.dropped = int64_t(dropped[0]);
  s.stats.assignments = int64_t(s.global.tokens) * d.K;
  s.stats.entropy = s.global.entropy_sum / s.global.tokens;
  s.stats.aux_loss = s.losses.aux;
  s.stats.z_loss = s.losses.z;
}

void moe_layer_backward(float* dxn, const float* dout, MoeLayerState& s, const float* xn, const BlockParams& p,
                        const BlockParams& g, const Dims& d, const MoeConfig& cfg, TokenDispatcher& dispatcher) {
  const size_t M = s.plan.rows.size();
  s.dexpert_out.assign(M * size_t(d.D), 0.0f);
  s.dexpert_in.assign(M * size_t(d.D), 0.0f);
  std::fill(s.dweights.begin(), s.dweights.end(), 0.0f);
  if (d.Fs > 0)
    swiglu_mlp_backward(dxn, g.shared_w1, g.shared_w3, g.shared_w2, dout, s.shared, s.shared_scratch, xn, p.shared_w1,
                        p.shared_w3, p.shared_w2, d.N, d.D, d.Fs);
  dispatcher.combine_backward(s.dexpert_out.data(), s.dweights.data(), dout, s.experts.out.data(),
                              s.router.weights.data());
  experts_backward(s.dexpert_in.data(), g.experts_w1, g.experts_w3, g.experts_w2, s.dexpert_out.data(), s.experts,
                   s.expert_scratch, s.expert_in.data(), p.experts_w1, p.experts_w3, p.experts_w2, s.offsets.data(),
                   d.E, d.D, d.Fe);
  dispatcher.dispatch_backward(dxn, s.dexpert_in.data());
  router_backward(dxn, g.router, s.router, s.dweights.data(), s.global, xn, p.router, d, cfg);
}

}  // namespace moe
