#include "src/train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

namespace moe {

AdamW::AdamW(const ParamTable& table, const OptimConfig& cfg)
    : table_(table), cfg_(cfg), m_(size_t(table.total()), 0.0f), v_(size_t(table.total()), 0.0f) {}

double AdamW::grad_sq_sum(const float* grad) const {
  double s = 0;
  for (const auto& p : table_.params())
    if (p.trainable) s += ops::sum_squares(grad + p.offset, p.numel);
  return s;
}

AdamW::SqSums AdamW::grad_sq_sums(const float* grad) const {
  SqSums s;
  for (const auto& p : table_.params())
    if (p.trainable) (p.shard.split_dim >= 0 ? s.sharded : s.replicated) += ops::sum_squares(grad + p.offset, p.numel);
  return s;
}

void AdamW::step(float* params, const float* grad, double lr, double clip) {
  ++step_;
  for (const auto& p : table_.params()) {
    if (!p.trainable) continue;
    const float* g = grad + p.offset;
    if (clip != 1.0) {
      scaled_.assign(g, g + p.numel);
      ops::scale_inplace(scaled_.data(), float(clip), p.numel);
      g = scaled_.data();
    }
    ops::adamw_update(params + p.offset, g, m_.data() + p.offset, v_.data() + p.offset, p.numel, float(lr),
                      float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps),
                      p.weight_decay ? float(cfg_.weight_decay) : 0.0f, step_);
  }
}

double clip_scale(double grad_norm, double clip) {
  if (clip <= 0 || !(grad_norm > clip)) return 1.0;
  return clip / grad_norm;
}

}  // namespace moe
