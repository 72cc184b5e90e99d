#include "src/plan/memory.h"

#include <algorithm>

#include "src/plan/param_count.h"

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
  double ffn_inner = 0, expert_rows = 0;
  if (moe_layer) {
    const double K = double(c.moe.top_k), Fe = double(c.moe.expert_hidden) / double(p.etp);
    const double Fs = double(c.moe.num_shared_experts * c.moe.expert_hidden) / double(p.tp);
    // Each rank of an expert's etp group sees all of that expert's tokens: etp x the even share.
    expert_rows = K * a2a_factor * double(p.etp) / double(p.tp);
    ffn_inner = expert_rows * (2 * D + 3 * Fe) + 2 * double(c.moe.num_experts) + 3 * Fs;
  } else {
    ffn_inner = 3 * double(m.ffn_hidden) / double(p.tp);
  }
  double ffn = 2 * D + 1 + ffn_inner;
  if (recompute == "block") return D * bytes;                       // the block input only
  if (recompute == "attention") attention = D;                      // input kept, rest recomputed
  // moe: router and the dispatched rows kept, the experts' hidden activations and outputs rebuilt.
  if (recompute == "moe" && moe_layer) ffn = 2 * D + 1 + 2 * double(c.moe.num_experts) + expert_rows * D;
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
  mb.params = p.zero_stage >= 3 ? (dense / dp + expert / edp + 2.0 * double(sp.largest_layer)) * pb
                                : (dense + expert) * pb;
  mb.grads = p.zero_stage >= 2 ? (dense / dp + expert / edp) * pb : (dense + expert) * pb;
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
    const double V = double(c.model.vocab_size) / double(p.tp);
    mb.activations += tokens * ((2 * double(c.model.d_model) + 1) * pb + (2 * V + 2) * 4.0);
  }
  // Dispatch send and receive buffers of one MoE layer (reused layer to layer) under ep > 1.
  if (p.ep > 1 && sp.moe_layers > 0) {
    const double rows = tokens * double(c.moe.top_k) * double(p.etp) / double(p.tp);
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
