// What a training checkpoint holds: parameters ("param/NAME"), AdamW state ("adam_m/NAME",
// "adam_v/NAME"), and in the manifest's meta the resolved config, optimizer step and loader state.
// Replicated state is written once, by rank 0. Under expert parallelism each expert slice is
// written once, by the rank of edp index 0 that holds it (a tensor named by its logical name with
// the slice's shape); the manifest's layout lists which rank wrote which slice.
#pragma once
#include <optional>
#include <string>

#include "data/loader.h"
#include "src/comm/process_grid.h"
#include "src/train/config.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"

namespace moe {

// checkpoint.resume: never -> none; auto -> the latest complete checkpoint under root, if any;
// anything else is a checkpoint path (which must exist).
std::optional<std::string> find_resume_checkpoint(const Config& c, const std::string& root);

void save_training_state(const Config& c, const std::string& root, int64_t step, ModelState& model, AdamW& optim,
                         const data::ShardedLoader& loader, const comm::ProcessGrid& grid);
// Returns the step to continue from. The checkpoint's expert layout must match the grid's
// (DataError naming the folder otherwise).
int64_t load_training_state(const std::string& dir, ModelState& model, AdamW& optim, data::ShardedLoader& loader,
                            const comm::ProcessGrid& grid);
// Parameters only (eval, finetune).
void load_weights(const std::string& dir, ModelState& model);

}  // namespace moe
