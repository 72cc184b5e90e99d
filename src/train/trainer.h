// The training loop: loader -> forward/backward -> gradient reduction -> clip -> AdamW, with
// metrics, progress, periodic eval and crash-safe checkpoints. One code path for 1..N ranks.
#pragma once
#include <memory>
#include <string>

#include "src/comm/communicator.h"
#include "src/train/config.h"

namespace moe {

struct TrainOptions {
  std::string run_dir;       // RUN_DIR (created); metrics, config and checkpoints go there
  std::string init_from;     // finetune: a checkpoint or exported file to take the weights from ("" = fresh init)
  bool keep_optimizer = false;  // finetune: also take AdamW's moments and step count from init_from
  bool quiet = false;        // no progress line (tests)
  int64_t exit_after = 0;    // stop (with a checkpoint) after this many steps of this run; 0 = run to the end
};

struct TrainResult {
  int64_t steps_done = 0;
  double last_loss = 0;      // global loss of the last step
  double tokens_per_s = 0;   // mean over the steps of this run after the first
};

TrainResult train(const Config& c, const TrainOptions& opt, comm::Communicator& world);

}  // namespace moe
