#include "src/plan/memory.h"

#include <algorithm>

#include "src/plan/param_count.h"
#include "src/plan/zero_shape.h"

namespace moe::plan {

int64_t dtype_bytes(const std::string& precision) { return precision == "fp32" ? 4 : 2; }

int64_t inflight_microbatches(const std::string& schedule, int64_t pp, int64_t m, int64_t stage) {
  if (schedule == "gpipe") return m;
  return std::min(pp - stage, m);
}

namespace {

// Elements stored per token of one layer, by the part recomputation treats separately.
struct LayerActs {
  double attention = 0;     // the attention sub-layer, all of it
  double ffn = 0;           // the FFN sub-layer, all of it
  double experts = 0;       // of ffn: what recompute moe rebuilds (experts' hidden and outputs, shared experts)
};

LayerActs layer_acts(const Config& c, const Hardware& hw, bool moe_layer, double a2a_factor) {
  const auto& m = c.model;
  const auto& p = c.parallel;
  const double D = double(m.d_model), hd = double(m.head_dim());
  const double H = double(m.n_heads) / double(p.tp), KV = double(m.n_kv_heads) / double(p.tp);
  LayerActs a;
  // Attention: input, normed input, rstd, q, k, v, output before wo; scores (B, H, T, T) when the
  // kernel keeps them, else one log-sum-exp per head and row (flash attention).
  const double scores = hw.stores_attention_scores ? H * double(m.seq_len) : H;
  a.attention = 2 * D + 1 + (2 * H + 2 * KV) * hd + scores;
  // FFN: input, normed input, rstd, then the dense SwiGLU (a, b, h) or the MoE layer.
  a.ffn = 2 * D + 1;
  if (!moe_layer) {
    a.ffn += 3 * double(m.ffn_hidden) / double(p.tp);
    return a;
  }
  const double K = double(c.moe.top_k), Fe = double(c.moe.expert_hidden) / double(p.etp);
  const double Fs = double(c.moe.num_shared_experts * c.moe.expert_hidden);  // replicated over tp
  // Every rank dispatches its own k rows per token (tp ranks the same tokens: the experts are
  // replicated or, etp = tp, split by hidden units); etp over dp ranks (tp 1) gathers the group's
  // rows (etp x as many) and computes on all of them.
  const double own = K * a2a_factor, gather = p.tp == 1 ? double(p.etp) : 1.0;
  // Kept by every mode but block: router logits and probabilities, the dispatched rows, and under
  // etp over dp the gathered rows and this rank's rows' summed outputs.
  a.ffn += 2 * double(c.moe.num_experts) + own * D + (gather > 1 ? own * gather * D + own * D : 0.0);
  // Rebuilt by recompute moe: hidden activations (a, b, h) and outputs of the computed rows, and
  // the shared experts' hidden activations.
  a.experts = own * gather * (3 * Fe + D) + 3 * Fs;
  a.ffn += a.experts;
  return a;
}

}  // namespace

double layer_activation_bytes_per_token(const Config& c, const Hardware& hw, bool moe_layer,
                                        const std::string& recompute, double a2a_factor) {
  const double D = double(c.model.d_model), bytes = double(dtype_bytes(c.train.precision));
  const LayerActs a = layer_acts(c, hw, moe_layer, a2a_factor);
  if (recompute == "block") return D * bytes;                           // the block input only
  if (recompute == "attention") return (D + a.ffn) * bytes;             // attention input kept
  if (recompute == "moe") return (a.attention + a.ffn - a.experts) * bytes;
  return (a.attention + a.ffn) * bytes;
}

double recompute_workspace_bytes_per_token(const Config& c, const Hardware& hw, double a2a_factor) {
  const std::string& mode = c.parallel.recompute;
  const double D = double(c.model.d_model), bytes = double(dtype_bytes(c.train.precision));
  bool any_moe = false, any_dense = false;
  for (int64_t i = 0; i < c.model.n_layers; ++i) (c.model.is_moe_layer(i) ? any_moe : any_dense) = true;
  const LayerActs dense = layer_acts(c, hw, false, a2a_factor), moe = layer_acts(c, hw, true, a2a_factor);
  const LayerActs& any = any_moe ? moe : dense;
  if (mode == "attention") return any.attention * bytes;
  if (mode == "moe") return any_moe ? moe.experts * bytes : 0.0;
  if (mode != "block") return 0.0;
  // block: a whole block rebuilt from its input (one FFN of each kind the model has).
  double ffn = 2 * D + 1;
  if (any_dense) ffn += dense.ffn - (2 * D + 1);
  if (any_moe) ffn += moe.ffn - (2 * D + 1);
  return (D + any.attention + ffn) * bytes;
}

MemoryBreakdown stage_memory(const Config& c, const Hardware& hw, double a2a_factor, int64_t stage) {
  const auto& p = c.parallel;
  const StageParams sp = stage_params(c, stage);
  const double pb = double(dtype_bytes(c.train.precision));
  const double opt_bytes = c.train.precision == "fp32" ? 8.0 : 12.0;  // m, v (+ fp32 master)
  const double dp = double(p.dp), edp = double(p.dp * p.tp / (p.ep * p.etp));
  const double dense = double(sp.dense), expert = double(sp.expert);
  MemoryBreakdown mb;
  mb.stage = stage;
  const ZeroShape z = zero_shape(c, stage);
  // Stage 3: the owned shard plus the other ranks' part of the stage in use; stages 2 and 3: the
  // gradient shard plus two consecutive stages of full gradients (one reducing, one computing).
  mb.params = p.zero_stage >= 3 ? (z.owned + z.gathered_stage) * pb : (dense + expert) * pb;
  mb.grads = p.zero_stage >= 2 ? (z.owned + z.grad_pair) * pb : (dense + expert) * pb;
  // All-gather staging (the trainer's mem_comm): stages 1-2 one bucket; stage 3 the buckets
  // gathered over more than one rank, the prefetched stage and the first stage's buckets.
  if (p.zero_stage == 1 || p.zero_stage == 2) mb.staging = z.largest_bucket * pb;
  if (p.zero_stage >= 3)
    mb.staging = (z.largest_shared_bucket + z.largest_prefetched_stage + z.first_stage_bucket) * pb;
  mb.optimizer = p.zero_stage >= 1 ? (dense / dp + expert / edp) * opt_bytes : (dense + expert) * opt_bytes;

  // Activations: tokens of one micro-batch on this rank, times the layers, times in-flight.
  const double tokens = double(c.train.batch_size / (p.dp * p.microbatches) * c.model.seq_len);
  const int64_t first = stage * sp.layers;
  double per_mb = 0;
  for (int64_t i = first; i < first + sp.layers; ++i)
    per_mb += layer_activation_bytes_per_token(c, hw, c.model.is_moe_layer(i), p.recompute, a2a_factor);
  const double inflight = double(inflight_microbatches(p.schedule, p.pp, p.microbatches, stage));
  mb.activations = per_mb * tokens * inflight + double(c.model.d_model) * pb * tokens;  // + residual stream
  // Recomputation rebuilds into one workspace shared by the layers.
  mb.activations += recompute_workspace_bytes_per_token(c, hw, a2a_factor) * tokens;
  if (stage == p.pp - 1) {
    // Final norm in/out and rstd, then fp32 logits and their gradient (vocab-parallel), lse, loss.
    const double V = double(c.model.vocab_size);  // the head is replicated over tp
    mb.activations += tokens * ((2 * double(c.model.d_model) + 1) * pb + (2 * V + 2) * 4.0);
  }
  // Dispatch send and receive buffers of one MoE layer (reused layer to layer) under ep > 1.
  if (p.ep > 1 && sp.moe_layers > 0) {
    const double rows = tokens * double(c.moe.top_k);
    mb.a2a_buffers = rows * (1.0 + a2a_factor) * double(c.model.d_model) * pb;
  }
  return mb;
}

MemoryBreakdown estimate_memory(const Config& c, const Hardware& hw, double a2a_factor) {
  MemoryBreakdown worst;
  for (int64_t s = 0; s < c.parallel.pp; ++s) {
    MemoryBreakdown m = stage_memory(c, hw, a2a_factor, s);
    if (s == 0 || m.total() > worst.total()) worst = m;
  }
  return worst;
}

}  // namespace moe::plan
