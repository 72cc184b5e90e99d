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

double layer_activation_bytes_per_token(const Config& c, const Hardware& hw, bool moe_layer,
                                        const std::string& recompute, double a2a_factor) {
  const auto& m = c.model;
  const auto& p = c.parallel;
  const double D = double(m.d_model), hd = double(m.head_dim());
  const double H = double(m.n_heads) / double(p.tp), KV = double(m.n_kv_heads) / double(p.tp);
  const double bytes = double(dtype_bytes(c.train.precision));
  // Attention: input, normed input, rstd, q, k, v, output before wo; scores (B, H, T, T) when the
  // kernel keeps them, else one log-sum-exp per head and row (flash attention).
  const double scores = hw.stores_attention_scores ? H * double(m.seq_len) : H;
  double attention = 2 * D + 1 + (2 * H + 2 * KV) * hd + scores;
  // FFN: input, normed input, rstd, then the dense SwiGLU (a, b, h) or the MoE layer.
  double ffn_inner = 0, expert_rows = 0, gathered_rows = 0;
  if (moe_layer) {
    const double K = double(c.moe.top_k), Fe = double(c.moe.expert_hidden) / double(p.etp);
    const double Fs = double(c.moe.num_shared_experts * c.moe.expert_hidden);  // replicated over tp
    // Every rank dispatches its own k rows per token (tp ranks the same tokens: the experts are
    // replicated or, etp = tp, split by hidden units). Input rows and outputs, and the hidden
    // activations of the rows the experts compute: etp over dp ranks (tp 1) gathers the group's
    // rows (etp x as many) and keeps them and this rank's outputs too.
    const double own = K * a2a_factor, gather = p.tp == 1 ? double(p.etp) : 1.0;
    expert_rows = own;
    gathered_rows = gather > 1 ? own * gather : 0.0;
    // Dispatched rows in; hidden activations and outputs of the computed rows; etp over dp also
    // the gathered rows and this rank's rows' summed outputs.
    ffn_inner = own * D + own * gather * (3 * Fe + D) + 2 * double(c.moe.num_experts) + 3 * Fs;
    if (gather > 1) ffn_inner += own * gather * D + own * D;
  } else {
    ffn_inner = 3 * double(m.ffn_hidden) / double(p.tp);
  }
  double ffn = 2 * D + 1 + ffn_inner;
  if (recompute == "block") return D * bytes;                       // the block input only
  if (recompute == "attention") attention = D;                      // input kept, rest recomputed
  // moe: router and the dispatched rows kept (etp over dp: the gathered rows too), the experts'
  // hidden activations and outputs rebuilt.
  if (recompute == "moe" && moe_layer)
    ffn = 2 * D + 1 + 2 * double(c.moe.num_experts) + (expert_rows + gathered_rows) * D;
  return (attention + ffn) * bytes;
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
  // Stage 3: the owned shard plus the gathered parts of two consecutive stages (the one in use
  // and the prefetched one); stage 2 and 3: the shard plus two stages of full gradients.
  mb.params = p.zero_stage >= 3 ? (z.owned + z.gathered_pair) * pb : (dense + expert) * pb;
  mb.grads = p.zero_stage >= 2 ? (z.owned + z.grad_pair) * pb : (dense + expert) * pb;
  // All-gather staging: one bucket; stage 3 also the prefetched stage and a bucket for the
  // synchronous gathers.
  if (p.zero_stage >= 1) mb.staging = z.largest_bucket * pb;
  if (p.zero_stage >= 3) mb.staging += (z.largest_stage + z.largest_bucket) * pb;
  mb.optimizer = p.zero_stage >= 1 ? (dense / dp + expert / edp) * opt_bytes : (dense + expert) * opt_bytes;

  // Activations: tokens of one micro-batch on this rank, times the layers, times in-flight.
  const double tokens = double(c.train.batch_size / (p.dp * p.microbatches) * c.model.seq_len);
  const int64_t first = stage * sp.layers;
  double per_mb = 0, largest_layer_full = 0;
  for (int64_t i = first; i < first + sp.layers; ++i) {
    const bool moe = c.model.is_moe_layer(i);
    per_mb += layer_activation_bytes_per_token(c, hw, moe, p.recompute, a2a_factor);
    largest_layer_full =
        std::max(largest_layer_full, layer_activation_bytes_per_token(c, hw, moe, "none", a2a_factor));
  }
  const double inflight = double(inflight_microbatches(p.schedule, p.pp, p.microbatches, stage));
  mb.activations = per_mb * tokens * inflight + double(c.model.d_model) * pb * tokens;  // + residual stream
  // Recomputation rebuilds one layer's activations during backward.
  if (p.recompute != "none") mb.activations += largest_layer_full * tokens;
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
