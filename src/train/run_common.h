// Pieces every training loop shares (the CPU trainer and train.device cuda's).
#pragma once
#include <cstdint>

#include "data/loader.h"
#include "src/comm/communicator.h"
#include "src/train/config.h"

namespace moe {

// The data loader of a run: this rank's rows of every global batch of the train split.
data::LoaderOptions run_loader_options(const Config& c, const comm::Communicator& dp);

// After a step: whether every rank stops now, agreed collectively over `world` (a signal may reach
// the ranks at different steps), also when --exit-after's count of this run's steps is reached.
// The lead says so when a signal caused it.
bool stop_after_step(comm::Communicator& world, int64_t exit_after, int64_t steps_this_run, int64_t step_done,
                     bool lead);

}  // namespace moe
