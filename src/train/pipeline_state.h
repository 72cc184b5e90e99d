// Checkpoints under pipeline parallelism. Every rank has the full parameter table's addresses (the
// other stages' floats released, see release_foreign), but a stage updates only its own tensors and keeps AdamW moments (or its ZeRO shard of them) for those only.
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

// A stage keeps only its own tensors in physical memory: the floats of the other stages' tensors
// (foreign[i], one flag per table parameter) in `buffer` (parameters or gradients) are zeroed and
// their pages returned to the OS (src/core/page_memory.h); the table keeps its addresses, so a later
// gather_pipeline_params fills them again (then release them again).
void release_foreign(const ParamTable& table, const std::vector<bool>& foreign, float* buffer);

// Zeroes the gradients of this stage's tensors only (the others stay released).
void zero_own_grads(const ParamTable& table, const std::vector<bool>& foreign, float* grads);

// Copies the moments (and step count) of every tensor both update from `from` into `to`.
void copy_moments(const ParamTable& table, AdamW& from, AdamW& to);

}  // namespace moe
