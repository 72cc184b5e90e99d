// ZeRO stage 1 on the device: AdamW moments only for this rank's owned ranges of the flat buffer
// (src/parallel/zero.h's partition: dense tensors over dp, routed experts over edp), the update
// of the owned parameters only, then an all-gather of every rank's owned ranges. Gradients are
// all-reduced as in stage 0 (DeviceGradSync). The moments are in the host ZeroAdamW's shard
// layout, so checkpoints convert through it (to_full / from_full) and stay layout-independent.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "src/cuda/device_array.h"
#include "src/parallel/zero_optimizer.h"

namespace moe::comm {
class Communicator;
}

namespace moe::gpu {

class DeviceZeroAdamW {
 public:
  // part: the run's partition (built on the host groups); dp, edp: the same groups over device
  // memory (NCCL), null where a group is this rank alone.
  DeviceZeroAdamW(const ParamTable& table, const OptimConfig& cfg, const std::vector<bool>& frozen,
                  const ZeroPartition& part, comm::Communicator* dp, comm::Communicator* edp, cudaStream_t stream);
  // Sum of squares of this rank's owned, updated gradients (grads: the full reduced buffer);
  // summed over the dp group it is the global squared norm. Synchronises the stream.
  double owned_grad_sq_sum(const float* grads) const;
  // Updates the owned parameters with the gradients times clip_scale.
  void step(float* params, const float* grads, double lr, double clip_scale);
  // Every rank's owned ranges into params (collective over dp and edp).
  void gather(float* params);
  float* m() { return m_.get(); }
  float* v() { return v_.get(); }
  int64_t state_floats() const { return m_.size(); }  // per moment
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }

 private:
  const ParamTable& table_;
  OptimConfig cfg_;
  const ZeroPartition& part_;
  std::vector<ZeroPiece> pieces_;
  comm::Communicator *dp_, *edp_;
  cudaStream_t stream_;
  DeviceArray<float> m_, v_, staging_;
  DeviceArray<double> sq_;
  int64_t step_ = 0;
};

}  // namespace moe::gpu
