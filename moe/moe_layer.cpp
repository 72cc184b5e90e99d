#include "moe/moe_layer.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/model/phase_timer.h"

namespace moe {

void MoeLayerState::resize(const Dims& d) {
  router.resize(d);
  dweights.resize(size_t(d.N * d.K));
  if (d.Fs > 0) {
    shared.resize(d.N, d.Fs);
    shared_scratch.resize(d.N, d.Fs);
  }
}

namespace {

void reduce_router_stats(RouterStats& global, const RouterStats& local, int64_t E, const SumReducer& reduce_sum) {
  // One collective per layer: counts, prob sums, then the scalars.
  std::vector<double> buf;
  buf.reserve(size_t(2 * E + 4));
  buf.insert(buf.end(), local.counts.begin(), local.counts.end());
  buf.insert(buf.end(), local.prob_sum.begin(), local.prob_sum.end());
  buf.push_back(local.lse_sq_sum);
  buf.push_back(local.entropy_sum);
  buf.push_back(local.seq_aux_sum);
  buf.push_back(local.tokens);
  if (reduce_sum) {
    PhaseScope wait(Phase::comm_wait);
    reduce_sum(buf);
  }
  global.counts.assign(buf.begin(), buf.begin() + E);
  global.prob_sum.assign(buf.begin() + E, buf.begin() + 2 * E);
  global.lse_sq_sum = buf[size_t(2 * E)];
  global.entropy_sum = buf[size_t(2 * E + 1)];
  global.seq_aux_sum = buf[size_t(2 * E + 2)];
  global.tokens = buf[size_t(2 * E + 3)];
}

// Expert choice routes by its own map: permuted rows grouped by expert, slot = permuted row
// (the router's weights are stored per permuted row).
void expert_choice_plan(DispatchPlan& plan, const RouterState& r, int64_t E) {
  plan.rows = r.ec_rows;
  plan.slots.resize(r.ec_rows.size());
  for (size_t i = 0; i < plan.slots.size(); ++i) plan.slots[i] = int32_t(i);
  plan.offsets = r.ec_offsets;
  plan.tokens_per_expert.resize(size_t(E));
  for (int64_t e = 0; e < E; ++e) plan.tokens_per_expert[size_t(e)] = r.ec_offsets[size_t(e + 1)] - r.ec_offsets[size_t(e)];
  plan.capacity = r.ec_capacity;
  plan.dropped = r.ec_unrouted;  // tokens that no expert took
}

bool etp_split(const comm::Communicator* etp) { return etp && etp->size() > 1; }
// The etp group holds different tokens (tp 1) rather than the tp group's same tokens.
bool etp_gathers(const comm::Communicator* etp, const Dims& d) { return etp_split(etp) && d.tp != d.etp; }

// x (n) += sum over etp of part (n): the conjugate all-reduce of the hidden-unit split.
void add_etp_sum(float* x, std::vector<float>& part, comm::Communicator& etp) {
  {
    PhaseScope wait(Phase::comm_wait);
    etp.allreduce_sum(part.data(), int64_t(part.size()));
  }
  for (size_t i = 0; i < part.size(); ++i) x[i] += part[i];
}

}  // namespace

void moe_layer_forward(float* out, MoeLayerState& s, const float* xn, const BlockParams& p, const Dims& d,
                       const MoeConfig& cfg, TokenDispatcher& dispatcher, const SumReducer& reduce_sum,
                       comm::Communicator* etp) {
  {
    PhaseScope timed(Phase::route);
    router_forward(s.router, s.local, xn, p.router, p.router_bias, d, cfg, s.ctx, reduce_sum);
    reduce_router_stats(s.global, s.local, d.E, reduce_sum);
    s.losses = router_losses(s.global, d, cfg);
    if (cfg.router == "expert_choice") {
      expert_choice_plan(s.plan, s.router, d.E);
    } else {
      // Capacity drops rank assignments by their combine weights (Megatron-Core "probs" policy).
      dispatcher.plan(s.plan, s.router.topk_idx.data(), s.router.weights.data(), d.N, d.K, d.E,
                      cfg.capacity_factor, int64_t(s.global.tokens), cfg.drop_policy);
    }
  }
  {
    PhaseScope timed(Phase::dispatch);
    dispatcher.dispatch_preprocess(s.plan);
    dispatcher.dispatch(xn, d.D);
    dispatcher.dispatch_postprocess(s.expert_in, s.offsets);
  }
  {
    PhaseScope timed(Phase::experts);
    // The experts this rank holds: all E here, E / ep under expert parallelism.
    const int64_t local_experts = int64_t(s.offsets.size()) - 1;
    if (!etp_gathers(etp, d)) {
      experts_forward(s.experts, s.expert_in.data(), p.experts_w1, p.experts_w3, p.experts_w2, s.offsets.data(),
                      local_experts, d.D, d.Fe);
    } else {
      s.etp_gather.plan(*etp, s.offsets);
      s.etp_gather.gather(*etp, s.expert_in.data(), d.D, s.etp_rows);
      experts_forward(s.experts, s.etp_rows.data(), p.experts_w1, p.experts_w3, p.experts_w2,
                      s.etp_gather.all_offsets().data(), local_experts, d.D, d.Fe);
      s.etp_gather.scatter_sum(*etp, s.experts.out.data(), d.D, s.etp_out);
    }
  }
  {
    PhaseScope timed(Phase::combine);
    dispatcher.combine_preprocess(etp_gathers(etp, d) ? s.etp_out.data() : s.experts.out.data(),
                                  s.router.weights.data());
    dispatcher.combine();
    if (!etp_split(etp) || etp_gathers(etp, d)) {
      dispatcher.combine_postprocess(out);
    } else {
      // Reduce the routed output alone: out holds the replicated residual.
      s.etp_partial.assign(size_t(d.N * d.D), 0.0f);
      dispatcher.combine_postprocess(s.etp_partial.data());
      add_etp_sum(out, s.etp_partial, *etp);
    }
  }
  if (d.Fs > 0) {
    PhaseScope timed(Phase::experts);
    swiglu_mlp_forward(out, s.shared, xn, p.shared_w1, p.shared_w3, p.shared_w2, d.N, d.D, d.Fs);
  }

  s.stats.tokens_per_expert.assign(s.global.counts.begin(), s.global.counts.end());
  std::vector<double> dropped{double(s.plan.dropped)};
  if (reduce_sum) {
    PhaseScope wait(Phase::comm_wait);
    reduce_sum(dropped);
  }
  s.stats.dropped = int64_t(dropped[0]);
  s.stats.assignments = int64_t(s.global.tokens) * d.K;
  s.stats.entropy = s.global.entropy_sum / s.global.tokens;
  s.stats.aux_loss = s.losses.aux;
  s.stats.z_loss = s.losses.z;
  if (p.router_bias)
    s.stats.bias = next_balancing_bias(p.router_bias, s.stats.tokens_per_expert, s.stats.assignments,
                                       cfg.router == "expert_choice" ? 0.0 : cfg.bias_update_rate);
  else
    s.stats.bias.clear();
}

void moe_layer_backward(float* dxn, const float* dout, MoeLayerState& s, const float* xn, const BlockParams& p,
                        const BlockParams& g, const Dims& d, const MoeConfig& cfg, TokenDispatcher& dispatcher,
                        comm::Communicator* etp) {
  const size_t M = size_t(s.offsets.back());  // rows this rank's experts computed
  s.dexpert_out.assign(M * size_t(d.D), 0.0f);
  s.dexpert_in.assign(M * size_t(d.D), 0.0f);
  s.dweights.assign(s.router.weights.size(), 0.0f);
  if (d.Fs > 0) {
    PhaseScope timed(Phase::experts);
    swiglu_mlp_backward(dxn, g.shared_w1, g.shared_w3, g.shared_w2, dout, s.shared, s.shared_scratch, xn, p.shared_w1,
                        p.shared_w3, p.shared_w2, d.N, d.D, d.Fs);
  }
  {
    PhaseScope timed(Phase::combine);
    dispatcher.combine_backward(s.dexpert_out.data(), s.dweights.data(), dout,
                                etp_gathers(etp, d) ? s.etp_out.data() : s.experts.out.data(),
                                s.router.weights.data());
    // d(weight) = <dout, expert output>, and each etp rank of a tp group holds a partial output.
    if (etp_split(etp) && !etp_gathers(etp, d)) {
      PhaseScope wait(Phase::comm_wait);
      etp->allreduce_sum(s.dweights.data(), int64_t(s.dweights.size()));
    }
  }
  {
    PhaseScope timed(Phase::experts);
    const int64_t local_experts = int64_t(s.offsets.size()) - 1;
    if (!etp_gathers(etp, d)) {
      experts_backward(s.dexpert_in.data(), g.experts_w1, g.experts_w3, g.experts_w2, s.dexpert_out.data(),
                       s.experts, s.expert_scratch, s.expert_in.data(), p.experts_w1, p.experts_w3, p.experts_w2,
                       s.offsets.data(), local_experts, d.D, d.Fe);
    } else {  // every member's d(out) through this rank's slice; the partial d(in) back to the owners
      s.etp_gather.gather(*etp, s.dexpert_out.data(), d.D, s.etp_drows);
      s.etp_dx.assign(s.etp_rows.size(), 0.0f);
      experts_backward(s.etp_dx.data(), g.experts_w1, g.experts_w3, g.experts_w2, s.etp_drows.data(), s.experts,
                       s.expert_scratch, s.etp_rows.data(), p.experts_w1, p.experts_w3, p.experts_w2,
                       s.etp_gather.all_offsets().data(), local_experts, d.D, d.Fe);
      s.etp_gather.scatter_sum(*etp, s.etp_dx.data(), d.D, s.dexpert_in);
    }
  }
  {
    PhaseScope timed(Phase::dispatch);
    if (!etp_split(etp) || etp_gathers(etp, d)) {
      dispatcher.dispatch_backward(dxn, s.dexpert_in.data());
    } else {  // each rank's hidden units give a part of d(xn) through the routed experts
      s.etp_partial.assign(size_t(d.N * d.D), 0.0f);
      dispatcher.dispatch_backward(s.etp_partial.data(), s.dexpert_in.data());
      add_etp_sum(dxn, s.etp_partial, *etp);
    }
  }
  PhaseScope timed(Phase::route);
  router_backward(dxn, g.router, s.router, s.dweights.data(), s.global, xn, p.router, d, cfg);
}

}  // namespace moe
