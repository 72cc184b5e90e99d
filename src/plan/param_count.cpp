#include "src/plan/param_count.h"

namespace moe::plan {
namespace {

struct LayerParams {
  int64_t attention, norms, dense_ffn, router, experts, shared;
};

LayerParams layer_params(const Config& c, int64_t i) {
  const auto& m = c.model;
  const int64_t D = m.d_model, hd = m.head_dim();
  LayerParams l{};
  l.attention = D * hd * (2 * m.n_heads + 2 * m.n_kv_heads);
  l.norms = 2 * D;
  if (!m.is_moe_layer(i)) {
    l.dense_ffn = 3 * D * m.ffn_hidden;
    return l;
  }
  const int64_t E = c.moe.num_experts, Fe = c.moe.expert_hidden;
  l.router = E * D + E;
  l.experts = E * 3 * D * Fe;
  l.shared = c.moe.num_shared_experts * 3 * D * Fe;
  return l;
}

}  // namespace

ParamCounts count_params(const Config& c) {
  const auto& m = c.model;
  ParamCounts p;
  p.embedding = m.vocab_size * m.d_model;
  p.output = m.vocab_size * m.d_model + m.d_model;
  p.expert_size = 3 * m.d_model * c.moe.expert_hidden;
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const LayerParams l = layer_params(c, i);
    p.attention += l.attention;
    p.norms += l.norms;
    p.dense_ffn += l.dense_ffn;
    p.router += l.router;
    p.experts += l.experts;
    p.shared += l.shared;
    p.moe_layers += m.is_moe_layer(i) ? 1 : 0;
  }
  return p;
}

StageParams stage_params(const Config& c, int64_t stage) {
  const auto& m = c.model;
  const auto& par = c.parallel;
  const int64_t per_stage = m.n_layers / par.pp;
  StageParams s;
  s.layers = per_stage;
  // Embedding and head on the first and last stage, replicated over tp (no vocabulary-parallel
  // head in the trainer: docs/distributed.md, "Tensor parallelism").
  if (stage == 0) s.dense += m.vocab_size * m.d_model;
  if (stage == par.pp - 1) s.dense += m.vocab_size * m.d_model + m.d_model;
  for (int64_t i = stage * per_stage; i < (stage + 1) * per_stage; ++i) {
    const LayerParams l = layer_params(c, i);
    // Norms, the router and the shared experts are replicated over tp; the other matrices are split.
    const int64_t dense = (l.attention + l.dense_ffn) / par.tp + l.norms + l.router + l.shared;
    const int64_t expert = l.experts / (par.ep * par.etp);
    s.dense += dense;
    s.expert += expert;
    s.moe_layers += m.is_moe_layer(i) ? 1 : 0;
    s.dense_ffn_layers += m.is_moe_layer(i) ? 0 : 1;
  }
  return s;
}

}  // namespace moe::plan
