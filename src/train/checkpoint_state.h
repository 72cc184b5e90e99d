// What a training checkpoint holds: parameters ("param/NAME"), AdamW state ("adam_m/NAME",
// "adam_v/NAME"), and in the manifest's meta the resolved config, optimizer step and loader state.
// Every distinct slice is written once: replicated state by rank 0, each tensor-parallel slice by
// the dp-0 rank of its tp index, each expert slice by the edp-0 rank that holds it (a tensor named
// by its logical name with the slice's shape); the manifest's layout.tensor_slices lists which
// rank wrote which box of which tensor.
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
                         const data::ShardedLoader& loader, const comm::ProcessGrid& grid,
                         const nlohmann::json& extra_meta = nlohmann::json::object());
// Returns the step to continue from. The checkpoint may come from any (dp, ep) layout: every
// tensor, AdamW moments included, is resharded into this rank's slices (src/train/reshard.h).
int64_t load_training_state(const std::string& dir, ModelState& model, AdamW& optim, data::ShardedLoader& loader,
                            const comm::ProcessGrid& grid);
// Parameters only (eval, finetune, export, generate), from a checkpoint of any layout (folder, run
// directory or checkpoints root) or an exported .safetensors / .h5 file.
void load_weights(const std::string& path, ModelState& model);
// Parameters, and AdamW moments of the tensors `optim` updates when optim is given, from the
// checkpoint folder `dir` of any layout; returns the manifest's meta.
nlohmann::json load_state_tensors(const std::string& dir, ModelState& model, AdamW* optim);

}  // namespace moe
