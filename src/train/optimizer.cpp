#include "src/train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "src/core/error.h"

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
  m_.assign(size_t(n), 0.0f);
  v_.assign(size_t(n), 0.0f);
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
      (ps[i].shard.split_dim >= 0 ? s.sharded : s.replicated) += ops::sum_squares(grad + ps[i].offset, ps[i].numel);
  return s;
}

void AdamW::step(float* params, const float* grad, double lr, double clip) {
  ++step_;
  const auto& ps = table_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!updates(i)) continue;
    const ParamInfo& p = ps[i];
    const float* g = grad + p.offset;
    // Clipped gradients go through a cache-sized scratch chunk, not a copy of the whole tensor
    // (expert tensors are tens of MB: a full copy is two extra passes over memory).
    constexpr int64_t kChunk = 1 << 16;
    for (int64_t c0 = 0; c0 < p.numel; c0 += kChunk) {
      const int64_t n = std::min(kChunk, p.numel - c0);
      const float* gc = g + c0;
      if (clip != 1.0) {
        scaled_.assign(gc, gc + n);
        ops::scale_inplace(scaled_.data(), float(clip), n);
        gc = scaled_.data();
      }
      ops::adamw_update(params + p.offset + c0, gc, m_of(i) + c0, v_of(i) + c0, n, float(lr), float(cfg_.beta1),
                        float(cfg_.beta2), float(cfg_.eps), p.weight_decay ? float(cfg_.weight_decay) : 0.0f,
                        step_);
    }
  }
}

double clip_scale(double grad_norm, double clip) {
  if (clip <= 0 || !(grad_norm > clip)) return 1.0;
  return clip / grad_norm;
}

}  // namespace moe
