// One optimizer step's forward and backward on the device: the local batch in
// parallel.microbatches micro-batches, gradients accumulated in DeviceModel::grads(), with the
// CPU step's definition (src/train/train_step.cpp, src/train/micro_batches.h).
#pragma once
#include <cstdint>
#include <vector>

#include "moe/load_stats.h"
#include "moe/router.h"
#include "src/cuda/device_model.h"

namespace moe::gpu {

struct DeviceStepOutput {
  DeviceLosses losses;                 // lm_sum, aux and z summed over the micro-batches
  std::vector<LayerLoadStats> stats;   // per MoE layer, summed over the micro-batches
  std::vector<int64_t> ep_sent_bytes;  // per ep rank, summed over the micro-batches (empty without ep)
};

// dm: built with micro_batch_config(c) for local_rows / c.parallel.microbatches sequences.
// tokens: host (local_rows, seq_len + 1), micro-batch j in rows [j * micro_rows, (j + 1) * micro_rows)
// as the loader lays them out. Does not zero the gradients. With moe.bias_update_rate > 0 each
// layer's stats.bias is the balancing bias after this step (from the counts of the whole step).
DeviceStepOutput device_forward_backward(const Config& c, DeviceModel& dm, const int32_t* tokens, int64_t local_rows,
                                         double global_tokens, const SumReducer& reduce_sum);

}  // namespace moe::gpu
