// The gradient reduction and global gradient norm of train.device cuda over a data- and
// expert-parallel layout, the rules of the CPU trainer: dense tensors are summed over dp, routed
// expert slices over edp (the ranks holding the same experts), in runs of consecutive tensors of
// one kind (a few large calls instead of one per tensor); the squared norm counts replicated
// tensors once and sums the expert slices over ep.
#pragma once
#include <cstdint>
#include <vector>

#include "src/cuda/device_model.h"

namespace moe::gpu {

class DeviceGradSync {
 public:
  // dp, edp: groups over device memory (NCCL), null where the group is this rank alone; ep: the
  // expert-parallel group (host memory: one double per step).
  DeviceGradSync(const ParamTable& table, comm::Communicator* dp, comm::Communicator* edp, comm::Communicator& ep);
  // Sums grads (device, table layout) over the groups; every rank of the layout calls it.
  void reduce(float* grads) const;
  // The global norm of the gradients the optimizer updates (synchronises its stream).
  double norm(const DeviceAdamW& optim, const float* grads) const;

 private:
  struct Range {
    int64_t begin = 0, end = 0;
    bool expert = false;
  };
  std::vector<Range> ranges_;
  comm::Communicator *dp_, *edp_;
  comm::Communicator& ep_;
};

}  // namespace moe::gpu
