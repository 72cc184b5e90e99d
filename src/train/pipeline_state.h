// Checkpoints under pipeline parallelism. Every rank holds the full parameter table, but a stage
// updates only its own tensors and keeps AdamW moments (or its ZeRO shard of them) for those only.
// Before a save, each tensor's parameters and moments are broadcast from its owning stage over the
// pp group, so the first stage holds the whole up-to-date state and the ordinary (pp = 1) writer
// saves it: the checkpoint is a set of full tensors that loads under any pp
// (src/train/checkpoint_state.h).
#pragma once
#include "src/comm/communicator.h"
#include "src/parallel/pipeline_layout.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"

namespace moe {

// Broadcasts every tensor's parameters from its owning stage over the pp group, so every rank
// holds the whole up-to-date model (for periodic eval and the non-finite scan, which run the
// whole model on every stage). Collective over pp.
void gather_pipeline_params(const StageLayout& layout, ModelState& model, comm::Communicator& pp);

// `full` (an AdamW over the whole table) holds this stage's moments; afterwards it holds every
// tensor's, and `model` every tensor's parameters, from the owning stages. Collective over pp.
void gather_pipeline_state(const StageLayout& layout, ModelState& model, AdamW& full, comm::Communicator& pp);

// Copies the moments (and step count) of every tensor both update from `from` into `to`.
void copy_moments(const ParamTable& table, AdamW& from, AdamW& to);

}  // namespace moe
