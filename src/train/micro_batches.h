// Gradient accumulation over parallel.microbatches, shared by the CPU step (train_step.cpp) and
// the device step (src/cuda/device_train_step.cpp) so both define a step the same way.
#pragma once
#include <cstdint>

#include "moe/load_stats.h"
#include "src/train/config.h"

namespace moe {

// The config of one micro-batch's model. MoE statistics are per micro-batch forward; scaling the
// aux and z coefficients by 1/m makes the step's aux and z losses (and their gradients) the mean
// over the micro-batches.
Config micro_batch_config(const Config& c);

// Adds micro-batch statistics s to the step's `total` (the first micro-batch replaces it): counts,
// drops, assignments and losses sum, the entropy is the mean over the m micro-batches.
void add_micro_batch_stats(LayerLoadStats& total, const LayerLoadStats& s, bool first, int64_t m);

}  // namespace moe
