// AdamW over the flat parameter buffer: decoupled weight decay (not on norms), global-norm
// clipping. State (m, v) uses the parameter table's offsets, so checkpoints and sharding see
// the same named views.
#pragma once
#include <cstdint>
#include <vector>

#include "src/model/params.h"
#include "src/train/config.h"

namespace moe {

class AdamW {
 public:
  AdamW(const ParamTable& table, const OptimConfig& cfg);
  // Sum of squares of the trainable gradients (the caller reduces it across ranks when sharded).
  double grad_sq_sum(const float* grad) const;
  // The same sum split into replicated tensors and tensors split over a group (expert slices):
  // the global squared norm is replicated + (sharded summed over the ep group), so replicated
  // tensors count once.
  struct SqSums {
    double replicated = 0, sharded = 0;
  };
  SqSums grad_sq_sums(const float* grad) const;
  // One update with learning rate lr; grads are scaled by clip_scale first (1 = no clipping).
  void step(float* params, const float* grad, double lr, double clip_scale);
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }

 private:
  const ParamTable& table_;
  OptimConfig cfg_;
  std::vector<float> m_, v_, scaled_;
  int64_t step_ = 0;
};

// Clip factor for global norm clipping: min(1, clip / norm); clip <= 0 disables it.
double clip_scale(double grad_norm, double clip);

}  // namespace moe
