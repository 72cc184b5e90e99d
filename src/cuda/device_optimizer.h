// The optimizer step of train.device cuda over its parallel layout, in one place for the trainer
// and the layout tests: the gradient reduction and global norm (DeviceGradSync), then clipped
// AdamW with every moment on each rank (parallel.zero_stage 0) or ZeRO stage 1 (moments for the
// owned ranges only, the owned parameters updated, then all-gathered), and the conversion of the
// moments to and from the checkpoint format (a full-size host AdamW, layout-independent).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "src/cuda/device_grad_sync.h"
#include "src/cuda/device_model.h"
#include "src/cuda/device_zero_adamw.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/zero.h"

namespace moe::gpu {

struct DeviceGroups {
  // Over device memory (NCCL), null where the group is this rank alone.
  comm::Communicator* dp = nullptr;
  comm::Communicator* edp = nullptr;
  // The same groups over host memory (MPI): ZeRO's partition and the checkpoint conversion, and
  // the ep group for the norm's expert slices.
  comm::Communicator* dp_host = nullptr;
  comm::Communicator* edp_host = nullptr;
  comm::Communicator* ep_host = nullptr;
};

class DeviceOptimizer {
 public:
  DeviceOptimizer(const Config& c, const ParamTable& table, const std::vector<bool>& frozen, const DeviceGroups& g,
                  cudaStream_t stream);
  // Sums the gradients over the layout (every rank calls it).
  void reduce(float* grads) const;
  // The global gradient norm (collective; synchronises the stream).
  double norm(const float* grads) const;
  // One clipped AdamW update of dm's weights with its gradients, the compute copy refreshed.
  void step(DeviceModel& dm, double lr, double clip_scale);
  // The moments from / into the checkpoint format; save is collective under ZeRO.
  void load(AdamW& full);
  void save(AdamW& full);
  int64_t state_floats() const;  // per moment, on this rank
  int zero_stage() const { return zero_ ? 1 : 0; }

 private:
  const ParamTable& table_;
  cudaStream_t stream_;
  DeviceGroups groups_;
  DeviceGradSync sync_;
  std::unique_ptr<DeviceAdamW> full_;  // stage 0
  // stage 1: the partition (on the host groups), its host twin for checkpoints, the device state
  std::unique_ptr<GradBuckets> buckets_;
  std::unique_ptr<ZeroPartition> part_;
  std::unique_ptr<ZeroAdamW> host_;
  std::unique_ptr<DeviceZeroAdamW> zero_;
};

}  // namespace moe::gpu
