// Fine-tuning: which tensors finetune.freeze leaves untouched, and where a run's state comes from
// (its own checkpoint when resuming, else the --from checkpoint or exported file). docs/finetune.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "src/comm/process_grid.h"
#include "src/model/params.h"
#include "src/train/config.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"
#include "src/train/trainer.h"

namespace moe {

// True when the parameter `name` (a logical name) belongs to the freeze group `group`.
bool in_freeze_group(const std::string& group, const std::string& name);

// One flag per table parameter: frozen by c.finetune.freeze. ConfigError when the list freezes the
// router while moe.bias_update_rate moves its balancing bias.
std::vector<bool> frozen_params(const Config& c, const ParamTable& table);

// The start of a run, returning its first step: a checkpoint of the run itself (checkpoint.resume)
// wins, so a stopped fine-tune continues where it stopped; else opt.init_from gives the weights
// (and with opt.keep_optimizer the AdamW moments and step count; the loader and schedule start
// fresh); else the weights keep their initialisation.
int64_t restore_or_init(const Config& c, const TrainOptions& opt, const std::string& ckpt_root, ModelState& model,
                        AdamW& optim, data::ShardedLoader& loader, const comm::ProcessGrid& grid);

}  // namespace moe
