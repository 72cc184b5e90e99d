#include "src/plan/step_time.h"

#include <algorithm>

#include "src/plan/collectives.h"
#include "src/plan/memory.h"
#include "src/plan/param_count.h"

namespace moe::plan {
namespace {

// Forward work of one micro-batch on one rank of one stage, split by kind of op (seconds).
struct ForwardGroups {
  double attn_proj = 0, attn_core = 0, ffn = 0, experts = 0, elementwise = 0;
};

// Roofline: an op group takes the longer of its math and its memory traffic.
double roof(double flops, double bytes, const Hardware& hw, const std::string& precision) {
  return std::max(flops / (hw.peak_flops(precision) * hw.matmul_efficiency), bytes / hw.memory_bandwidth);
}

// Training (forward + backward = 3 x forward) time of one micro-batch, by group.
ForwardGroups train_groups(const Config& c, const Hardware& hw, int64_t stage, double tokens) {
  const auto& m = c.model;
  const auto& p = c.parallel;
  const std::string& prec = c.train.precision;
  const double pb = double(dtype_bytes(prec)), tp = double(p.tp);
  const double D = double(m.d_model), hd = double(m.head_dim()), T = double(m.seq_len);
  const double H = double(m.n_heads), KV = double(m.n_kv_heads);
  const int64_t per_stage = m.n_layers / p.pp;
  double proj_w = 0, ffn_w = 0, expert_w = 0, core_flops = 0, score_bytes = 0, act_bytes = 0;
  for (int64_t i = stage * per_stage; i < (stage + 1) * per_stage; ++i) {
    proj_w += D * hd * (2 * H + 2 * KV) / tp;
    core_flops += 2 * T * H * hd / tp;  // causal q k^T and p v (DESIGN.md MFU convention)
    if (hw.stores_attention_scores) score_bytes += 4 * H / tp * T * pb;  // write, read, dP write, read
    act_bytes += layer_activation_bytes_per_token(c, hw, m.is_moe_layer(i), "none", 1.0);
    if (!m.is_moe_layer(i)) {
      ffn_w += 3 * D * double(m.ffn_hidden) / tp;
    } else {
      // Router and shared experts are replicated over tp.
      ffn_w += double(c.moe.num_experts) * D + 3 * D * double(c.moe.num_shared_experts * c.moe.expert_hidden);
      expert_w += 3 * D * double(c.moe.expert_hidden) * double(c.moe.num_experts) / double(p.ep * p.etp);
    }
  }
  if (stage == p.pp - 1) ffn_w += double(m.vocab_size) * D;  // output head, replicated over tp
  // Active expert work per token on this rank: its top_k rows through 1/etp of the hidden units;
  // etp over dp ranks (tp 1) gathers the group's rows (etp x as many). With etp 1 every tp rank
  // computes the whole experts on the same tokens.
  const StageParams sp = stage_params(c, stage);
  const double etp_rows = p.tp == 1 ? double(p.etp) : 1.0;
  const double expert_active = double(sp.moe_layers) * double(c.moe.top_k) * etp_rows * 3 * D *
                               double(c.moe.expert_hidden) / double(p.etp);
  ForwardGroups g;
  // Weights are read in forward and backward and their gradients written: 3 passes.
  g.attn_proj = roof(3 * 2 * tokens * proj_w, 3 * proj_w * pb, hw, prec);
  g.ffn = roof(3 * 2 * tokens * ffn_w, 3 * ffn_w * pb, hw, prec);
  g.experts = roof(3 * 2 * tokens * expert_active, 3 * expert_w * pb, hw, prec);
  if (hw.attention_flops > 0) {
    // A measured attention kernel: its rate already includes its traffic over the scores.
    g.attn_core = 3 * tokens * core_flops / hw.attention_flops;
    act_bytes -= double(per_stage) * (hw.stores_attention_scores ? H / tp * T * pb : 0.0);
  } else {
    g.attn_core = roof(3 * tokens * core_flops, tokens * score_bytes, hw, prec);
  }
  // Norms, SwiGLU, RoPE, softmax and routing: each stored activation is written in forward and
  // read in backward, and its gradient written and read: about 4 passes over memory.
  g.elementwise = 4 * tokens * act_bytes / hw.memory_bandwidth;
  return g;
}

// Scales of a CPU rank sharing the machine (both 1 on accelerators): `speed` divides compute,
// `share` divides communication and per-call costs (one thread of the rank does those).
struct Sharing {
  double speed = 1, share = 1;
};

StepBreakdown stage_step(const Config& c, const Hardware& hw, double imbalance, int64_t stage, Sharing sh) {
  const auto& p = c.parallel;
  const auto& m = c.model;
  const double pb = double(dtype_bytes(c.train.precision));
  const double mbs = double(p.microbatches);
  const double tokens = double(c.train.batch_size / (p.dp * p.microbatches) * m.seq_len);
  const double D = double(m.d_model);
  const StageParams sp = stage_params(c, stage);
  ForwardGroups g = train_groups(c, hw, stage, tokens);
  for (double* part : {&g.attn_proj, &g.attn_core, &g.ffn, &g.experts, &g.elementwise}) *part /= sh.speed;
  g.elementwise += kernel_calls(c, stage) * hw.op_overhead / sh.share;  // per call, more threads do not help

  StepBreakdown s;
  s.stage = stage;
  const double per_mb_compute = g.attn_proj + g.attn_core + g.ffn + g.experts + g.elementwise;
  double recompute = 0;  // a forward is a third of forward + backward
  if (p.recompute == "block") recompute = per_mb_compute / 3;
  if (p.recompute == "attention") recompute = (g.attn_proj + g.attn_core) / 3;
  if (p.recompute == "moe") recompute = g.experts / 3;
  const double imbalance_extra = g.experts * std::max(0.0, imbalance - 1.0);

  // Tensor parallel: one all-reduce per sub-layer in forward and one in backward (Megatron).
  const Link tp_link = link_for_span(hw, p.tp);
  const double act = tokens * D * pb;
  double tp_ops = 2.0 * double(sp.layers) + 2.0 * double(sp.dense_ffn_layers);
  if (p.recompute == "block") tp_ops += double(sp.layers + sp.dense_ffn_layers);
  // attention recompute rebuilds the sub-layer up to wo only: no all-reduce (src/model/recompute.h).
  const double tp_comm = tp_ops * allreduce_time(act, p.tp, tp_link) / sh.share;

  // Expert parallel: dispatch and combine in forward and backward; the busiest rank waits.
  // Each rank dispatches its own k rows per token (tp ranks the same ones).
  const double rows = tokens * double(c.moe.top_k) * imbalance;
  double a2a_ops = 4.0 * double(sp.moe_layers);
  // block re-runs dispatch and combine; moe recomputes the experts from the kept dispatched rows.
  if (p.recompute == "block") a2a_ops += 2.0 * double(sp.moe_layers);
  double ep_comm = a2a_ops * alltoall_time(rows * D * pb, p.ep, link_for_span(hw, p.ep * p.etp));
  // Expert tensor parallel over dp ranks: gather the group's rows and reduce-scatter their
  // partial outputs, in both passes. Over the tp group: all-reduce the (N, D) routed output in
  // forward and the partial d(xn) in backward.
  const Link etp_link = link_for_span(hw, p.etp);
  if (p.tp == 1)
    ep_comm += 2.0 * double(sp.moe_layers) *
               (allgather_time(double(p.etp) * rows * D * pb, p.etp, etp_link) +
                reduce_scatter_time(double(p.etp) * rows * D * pb, p.etp, etp_link));
  else
    ep_comm += 2.0 * double(sp.moe_layers) * allreduce_time(act, p.etp, etp_link);

  // Pipeline: an activation forward and its gradient backward per micro-batch.
  const double pp_comm = p.pp > 1 ? 2.0 * p2p_time(act, link_for_span(hw, 2 * p.dp * p.tp)) / sh.share : 0.0;

  // Collectives beyond alpha-beta: on a shared CPU each waits for every rank to be scheduled.
  const double ep_syncs = p.ep > 1 ? 5.0 * double(sp.moe_layers) : 0.0;
  ep_comm = (ep_comm + ep_syncs * hw.sync_overhead) / sh.share;
  const double per_mb = per_mb_compute + recompute + imbalance_extra + tp_comm + ep_comm + pp_comm;
  s.compute = mbs * per_mb_compute;
  s.recompute = mbs * recompute;
  s.imbalance = mbs * imbalance_extra;
  s.tp_comm = mbs * tp_comm;
  s.ep_comm = mbs * ep_comm;
  s.pp_comm = mbs * pp_comm;
  s.bubble = double(p.pp - 1) * per_mb;

  // Data parallel: dense gradients over dp, expert gradients over edp (both span dp x tp ranks).
  const int64_t edp = p.dp * p.tp / (p.ep * p.etp);
  const Link dp_link = link_for_span(hw, p.dp * p.tp);
  const double dense_b = double(sp.dense) * pb, expert_b = double(sp.expert) * pb;
  auto sync = [&](double bytes, int64_t n) {
    if (p.zero_stage == 0) return allreduce_time(bytes, n, dp_link);
    if (p.zero_stage < 3) return reduce_scatter_time(bytes, n, dp_link) + allgather_time(bytes, n, dp_link);
    // ZeRO-3: gather the weights for forward and again for backward, reduce-scatter gradients,
    // for every micro-batch.
    return mbs * (2 * allgather_time(bytes, n, dp_link) + reduce_scatter_time(bytes, n, dp_link));
  };
  s.dp_comm = sync(dense_b, p.dp) + sync(expert_b, edp);
  const double ep_sync_calls = p.ep > 1 ? 5.0 * double(sp.moe_layers) * mbs : 0.0;
  s.dp_comm = (s.dp_comm + (collective_calls(c, stage) - ep_sync_calls) * hw.sync_overhead) / sh.share;

  // AdamW touches about 28 bytes per parameter it owns (weights, master or grad, m, v: read+write),
  // and the step zeroes the gradients and sums their squares first (8 more).
  const double owned = p.zero_stage >= 1 ? double(sp.dense) / double(p.dp) + double(sp.expert) / double(edp)
                                         : double(sp.dense + sp.expert);
  s.optimizer = owned * 36.0 / hw.memory_bandwidth / sh.speed;
  return s;
}

}  // namespace

double kernel_calls(const Config& c, int64_t stage) {
  const StageParams sp = stage_params(c, stage);
  // attention: norm, q/k/v, 2 rope, attention, wo, residual add; backward one fewer.
  double calls = 17.0 * double(sp.layers) + 11.0 * double(sp.dense_ffn_layers);
  // MoE: norm, router, softmax, top-k, gather, 3 grouped GEMMs, SwiGLU, combine, add (+ backward).
  calls += 21.0 * double(sp.moe_layers);
  if (stage == 0) calls += 2;                        // embedding forward, backward
  if (stage == c.parallel.pp - 1) calls += 8;        // final norm, head, cross-entropy, both passes
  return calls;
}

double collective_calls(const Config& c, int64_t stage) {
  const auto& p = c.parallel;
  const StageParams sp = stage_params(c, stage);
  const double mbs = double(p.microbatches), edp = double(p.dp * p.tp / (p.ep * p.etp));
  double calls = 0;
  // Router statistics and dropped counts are summed over the batch group in every MoE forward.
  if (p.dp > 1) calls += 2.0 * double(sp.moe_layers) * mbs;
  // EP: token counts, dispatch and combine forward, and both again backward.
  if (p.ep > 1) calls += 5.0 * double(sp.moe_layers) * mbs;
  // Gradient buckets: one per layer plus the head and the embedding, experts separately over edp.
  if (p.dp > 1) calls += double(sp.layers + 2);
  if (edp > 1 && sp.moe_layers > 0 && p.ep > 1) calls += double(sp.layers);
  // Loss, gradient norm and the stop flag, once per step.
  if (p.dp * p.tp * p.pp > 1) calls += 3;
  return calls;
}

double bubble_fraction(int64_t pp, int64_t microbatches) {
  return double(pp - 1) / double(microbatches + pp - 1);
}

StepBreakdown estimate_step(const Config& c, const Hardware& hw, double imbalance, int64_t threads) {
  const int64_t ranks = c.parallel.dp * c.parallel.tp * c.parallel.pp;
  if (threads <= 0) threads = default_threads(hw, ranks);
  const Sharing sh{rank_speed(hw, ranks, threads), core_share(hw, ranks, threads)};
  // The pipeline runs at the pace of its slowest stage; data-parallel work is per stage too.
  StepBreakdown slowest;
  double slowest_mb = -1, worst_tail = 0;
  for (int64_t s = 0; s < c.parallel.pp; ++s) {
    StepBreakdown b = stage_step(c, hw, imbalance, s, sh);
    const double mb = b.compute + b.recompute + b.imbalance + b.tp_comm + b.ep_comm + b.pp_comm;
    worst_tail = std::max(worst_tail, b.dp_comm + b.optimizer);
    if (mb > slowest_mb) {
      slowest_mb = mb;
      slowest = b;
    }
  }
  // Keep the slowest stage's pipeline parts and the largest data-parallel tail.
  const double tail = slowest.dp_comm + slowest.optimizer;
  if (tail < worst_tail) slowest.dp_comm += worst_tail - tail;
  return slowest;
}

}  // namespace moe::plan
