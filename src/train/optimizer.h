// AdamW over the flat parameter buffer: decoupled weight decay (not on norms), global-norm
// clipping. State (m, v) exists only for the tensors it updates (trainable and not frozen by
// finetune.freeze), packed in table order; m_of/v_of give a tensor's view (null when it has none).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/precision.h"
#include "src/core/page_vector.h"
#include "src/model/params.h"
#include "src/train/config.h"

namespace moe {

class ComputeWeights;

class AdamW {
 public:
  // frozen[i] (one entry per table parameter, or empty) excludes parameter i from updates, from
  // the gradient norm and from the optimizer state.
  AdamW(const ParamTable& table, const OptimConfig& cfg, std::vector<bool> frozen = {});
  // True when parameter i of the table is updated (and so has m and v).
  bool updates(size_t i) const { return state_offset_[i] >= 0; }
  float* m_of(size_t i) { return updates(i) ? m_.data() + state_offset_[i] : nullptr; }
  float* v_of(size_t i) { return updates(i) ? v_.data() + state_offset_[i] : nullptr; }
  int64_t state_floats() const { return int64_t(m_.size()); }
  // Sum of squares of the updated gradients (the caller reduces it across ranks when sharded).
  double grad_sq_sum(const float* grad) const;
  // The same sum split into replicated tensors and tensors split over a group (expert slices):
  // the global squared norm is replicated + (sharded summed over the ep group), so replicated
  // tensors count once.
  struct SqSums {
    double replicated = 0, sharded = 0;
  };
  SqSums grad_sq_sums(const float* grad) const;
  // One update with learning rate lr; grads are scaled by clip_scale first (1 = no clipping).
  // With `copy`, each updated tensor that copy->fused_target() names is also rounded into the
  // mixed-precision compute copy in the same pass (docs/precision.md).
  void step(float* params, const float* grad, double lr, double clip_scale, ComputeWeights* copy = nullptr);
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }

 private:
  const ParamTable& table_;
  OptimConfig cfg_;
  std::vector<int64_t> state_offset_;  // per parameter: offset into m_/v_, -1 when not updated
  PageVector m_, v_;
  int64_t step_ = 0;
};

// AdamW on one contiguous range (a tensor, or a ZeRO shard of one), gradients scaled by `clip`,
// in one pass (ops::adamw_update_fused); `copy` (optional) receives the updated values rounded to
// `copy_precision`.
void adamw_range(float* param, const float* grad, float* m, float* v, int64_t n, const OptimConfig& cfg, double lr,
                 double clip, bool decay, int64_t step, float* copy = nullptr,
                 Precision copy_precision = Precision::fp32);
// The same; the scratch buffer is no longer needed (kept for the ZeRO optimizer's call).
inline void adamw_range(float* param, const float* grad, float* m, float* v, int64_t n, const OptimConfig& cfg,
                        double lr, double clip, bool decay, int64_t step, std::vector<float>& /*scratch*/) {
  adamw_range(param, grad, m, v, n, cfg, lr, clip, decay, step);
}

// Clip factor for global norm clipping: min(1, clip / norm); clip <= 0 disables it.
double clip_scale(double grad_norm, double clip);

}  // namespace moe
