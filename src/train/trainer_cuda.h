// The training loop of train.device cuda (src/train/device_select.h chose it): the same run as
// trainer.cpp's on the CPU, with the forward, backward and AdamW on this rank's GPU
// (src/cuda/device_model.h), gradients all-reduced over the data-parallel group with NCCL, and the
// same data loader, schedule, metrics, load-balance profile and checkpoints (written from host
// copies, so a checkpoint written here loads on the CPU and back).
#pragma once
#include <string>

#include "src/comm/process_grid.h"
#include "src/train/trainer.h"

namespace moe {

TrainResult train_on_device(const Config& c, const TrainOptions& opt, comm::Communicator& world,
                            const comm::ProcessGrid& grid, const std::string& ckpt_root);

}  // namespace moe
