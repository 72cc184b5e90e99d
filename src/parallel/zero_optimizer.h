// AdamW over this rank's ZeRO shard (src/parallel/zero.h): moments exist only for the owned
// ranges (laid out as the shard), and step() updates only owned parameters; the caller then
// all-gathers them (ZeroPartition::gather). Checkpoints go through a full-size AdamW
// (to_full/from_full), so a ZeRO checkpoint is the same as a stage-0 one and loads into any
// layout and stage; the full-size state exists only while saving or loading.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "src/model/params.h"
#include "src/parallel/zero.h"
#include "src/train/config.h"
#include "src/train/optimizer.h"

namespace moe {

// An owned part of an updated tensor: its floats [flat, flat + n) of the flat parameter buffer sit
// at shard_off in the rank's shard (and its moments).
struct ZeroPiece {
  size_t param;       // table index
  int64_t flat;       // first float in the flat parameter buffer
  int64_t n;          // floats
  int64_t shard_off;  // position in the shard (and in the moments)
};
// This rank's pieces, range by range (frozen: as for AdamW).
std::vector<ZeroPiece> zero_pieces(const ParamTable& table, const std::vector<bool>& frozen, const ZeroPartition& part);

class ZeroAdamW {
 public:
  // frozen: as for AdamW (one flag per table parameter, or empty).
  ZeroAdamW(const ParamTable& table, const OptimConfig& cfg, const std::vector<bool>& frozen,
            const ZeroPartition& part);
  // grads: the full flat buffer (sharded = false, stage 1) or the gradient shard (stage 2).
  // Sum of squares of this rank's owned, updated gradients: summed over the dp group it is the
  // global squared norm, each element counted once.
  double grad_sq_sum(const float* grads, bool sharded) const;
  // The same over the owned parts of the tensors (table index i) for which counts(i) holds.
  double grad_sq_sum(const float* grads, bool sharded, const std::function<bool(size_t)>& counts) const;
  void step(float* params, const float* grads, bool sharded, double lr, double clip_scale);
  int64_t state_floats() const { return int64_t(m_.size()); }  // per moment
  // The moments in shard layout (state_floats() each) and the step count, for a device twin
  // (src/cuda/device_zero_adamw.h) that converts its state through this one.
  float* m_data() { return m_.data(); }
  float* v_data() { return v_.data(); }
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }
  // Collective over the dp and edp groups: fills `full` (same table and frozen list) with every
  // rank's moments and the step count.
  void to_full(AdamW& full, std::vector<float>& staging) const;
  // Takes this rank's owned part of `full`'s moments and its step count.
  void from_full(AdamW& full);

 private:
  const ParamTable& table_;
  OptimConfig cfg_;
  const ZeroPartition& part_;
  std::vector<ZeroPiece> pieces_;  // owned parts of updated tensors
  std::vector<float> m_, v_, scaled_;
  int64_t step_ = 0;
};

}  // namespace moe
