// ZeRO stages 1 and 2 under train.precision bf16 | fp16: the fp32 master weights sharded over the
// data-parallel groups, as in DeepSpeed's and Megatron's distributed optimizers (docs/distributed.md,
// "Sharded master weights"). Each rank keeps in physical memory only the master floats it owns (the
// ZeRO partition, src/parallel/zero.h); the rest of the flat buffer keeps its addresses but is
// released (src/core/page_memory.h). The optimizer updates the owned floats; at the start of the
// next step each rank rounds its owned ranges into the compute copy, and the copy is all-gathered
// as 16-bit codes (src/parallel/zero_half_gather.h). Whoever needs the whole fp32 master
// (checkpoint save, periodic eval, the non-finite replay) gathers it for the moment
// (gather_master / release_master).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "src/parallel/zero.h"
#include "src/parallel/zero_half_gather.h"
#include "src/train/model_state.h"
#include "src/train/precision_weights.h"

namespace moe {

class ShardedMaster {
 public:
  // Puts `w` in per-range mode. The master in `model` is whole now (initialised or loaded): this
  // releases the floats this rank does not own. All references must outlive this object.
  ShardedMaster(const ZeroPartition& part, ComputeWeights& w, ModelState& model);

  // Collective, before each step's forward: discards whatever was written to non-owned master
  // floats since the last call (the balancing-bias update, test faults), rounds the owned ranges
  // into the copy and all-gathers the copy. Afterwards the copy equals the whole-buffer refresh of
  // the unsharded master.
  void refresh_copy();
  // The tensors the trainer updates outside the optimizer (not trainable: the balancing bias) are
  // copied whole from the copy (which keeps them exact) into the master, so that an update reading
  // and writing the master sees every element on every rank. refresh_copy() keeps the owned part.
  void refill_untrained();
  // Collective: the whole master on every rank (each owner's floats), then back to the owned ones.
  // staging: scratch for ZeroPartition::gather.
  void gather_master(std::vector<float>& staging);
  void release_master();

  // Most master bytes resident (mincore) at refresh_copy() and refill_untrained() since the last
  // reset: the owned floats plus partial pages at range edges.
  int64_t peak_master_bytes() const { return peak_master_; }
  void reset_peak() { peak_master_ = 0; }
  // Communication staging of the 16-bit copy gather, in floats.
  int64_t staging_floats() const;
  const HalfGather& copy_gather() const { return *half_; }

 private:
  void sample();

  const ZeroPartition& part_;
  ComputeWeights& w_;
  ModelState& model_;
  std::unique_ptr<HalfGather> half_;
  std::vector<size_t> untrained_;  // table indices
  int64_t peak_master_ = 0;
};

}  // namespace moe
