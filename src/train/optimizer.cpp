#include "src/train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "src/core/error.h"
#include "src/train/precision_weights.h"

namespace moe {

AdamW::AdamW(const ParamTable& table, const OptimConfig& cfg, std::vector<bool> frozen)
    : table_(table), cfg_(cfg) {
  const auto& ps = table.params();
  MOE_CHECK(frozen.empty() || frozen.size() == ps.size(), "AdamW: one frozen flag per parameter");
  int64_t n = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    const bool updated = ps[i].trainable && (frozen.empty() || !frozen[i]);
    state_offset_.push_back(updated ? n : -1);
    if (updated) n += (ps[i].numel + 15) / 16 * 16;  // 16-float alignment, as in the parameter buffer
  }
  m_.resize(size_t(n));  // zero, untouched until written (a full AdamW only read from is free)
  v_.resize(size_t(n));
}

double AdamW::grad_sq_sum(const float* grad) const {
  double s = 0;
  const auto& ps = table_.params();
  for (size_t i = 0; i < ps.size(); ++i)
    if (updates(i)) s += ops::sum_squares(grad + ps[i].offset, ps[i].numel);
  return s;
}

AdamW::SqSums AdamW::grad_sq_sums(const float* grad) const {
  SqSums s;
  const auto& ps = table_.params();
  for (size_t i = 0; i < ps.size(); ++i)
    if (updates(i))
      (ps[i].shard.split() ? s.sharded : s.replicated) += ops::sum_squares(grad + ps[i].offset, ps[i].numel);
  return s;
}

void AdamW::step(float* params, const float* grad, double lr, double clip, ComputeWeights* copy) {
  ++step_;
  const auto& ps = table_.params();
  const Precision prec = copy ? copy->precision() : Precision::fp32;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!updates(i)) continue;
    const ParamInfo& p = ps[i];
    adamw_range(params + p.offset, grad + p.offset, m_of(i), v_of(i), p.numel, cfg_, lr, clip, p.weight_decay, step_,
                copy ? copy->fused_target(i) : nullptr, prec);
  }
}

void adamw_range(float* param, const float* grad, float* m, float* v, int64_t n, const OptimConfig& cfg, double lr,
                 double clip, bool decay, int64_t step, float* copy, Precision copy_precision) {
  ops::adamw_update_fused(param, grad, m, v, n, float(lr), float(cfg.beta1), float(cfg.beta2), float(cfg.eps),
                          decay ? float(cfg.weight_decay) : 0.0f, step, float(clip), copy, copy_precision);
}

double clip_scale(double grad_norm, double clip) {
  if (clip <= 0 || !(grad_norm > clip)) return 1.0;
  return clip / grad_norm;
}

}  // namespace moe
