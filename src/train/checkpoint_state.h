// What a training checkpoint holds: parameters ("param/NAME"), AdamW state ("adam_m/NAME",
// "adam_v/NAME"), and in the manifest's meta the resolved config, optimizer step and loader state.
// Replicated state is written once, by rank 0.
#pragma once
#include <optional>
#include <string>

#include "data/loader.h"
#include "src/comm/communicator.h"
#include "src/train/config.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"

namespace moe {

// checkpoint.resume: never -> none; auto -> the latest complete checkpoint under root, if any;
// anything else is a checkpoint path (which must exist).
std::optional<std::string> find_resume_checkpoint(const Config& c, const std::string& root);

void save_training_state(const Config& c, const std::string& root, int64_t step, ModelState& model, AdamW& optim,
                         const data::ShardedLoader& loader, comm::Communicator& world);
// Returns the step to continue from.
int64_t load_training_state(const std::string& dir, ModelState& model, AdamW& optim, data::ShardedLoader& loader);
// Parameters only (eval, finetune).
void load_weights(const std::string& dir, ModelState& model);

}  // namespace moe
