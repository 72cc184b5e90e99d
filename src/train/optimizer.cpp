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

void AdamW::step(float* params, const float* grad, double lr, double clip) {
  ++step_;
  const auto& ps = table_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!updates(i)) continue;
    const ParamInfo& p = ps[i];
    adamw_range(params + p.offset, grad + p.offset, m_of(i), v_of(i), p.numel, cfg_, lr, clip, p.weight_decay, step_,
                scaled_);
  }
}

void adamw_range(float* param, const float* grad, float* m, float* v, int64_t n, const OptimConfig& cfg, double lr,
                 double clip, bool decay, int64_t step, std::vector<float>& scratch) {
  // Clipped gradients go through a cache-sized scratch chunk, not a copy of the whole tensor
  // (expert tensors are tens of MB: a full copy is two extra passes over memory).
  constexpr int64_t kChunk = 1 << 16;
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    const float* gc = grad + c0;
    if (clip != 1.0) {
      scratch.assign(gc, gc + len);
      ops::scale_inplace(scratch.data(), float(clip), len);
      gc = scratch.data();
    }
    ops::adamw_update(param + c0, gc, m + c0, v + c0, len, float(lr), float(cfg.beta1), float(cfg.beta2),
                      float(cfg.eps), decay ? float(cfg.weight_decay) : 0.0f, step);
  }
}

double clip_scale(double grad_norm, double clip) {
  if (clip <= 0 || !(grad_norm > clip)) return 1.0;
  return clip / grad_norm;
}

}  // namespace moe
