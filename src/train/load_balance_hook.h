// The trainer's side of load-balance profiling: every profile.every steps, the global routing
// statistics of each MoE layer (with the balancing bias after the step's update), the step's
// phase times and, under expert parallelism, the ep x ep all-to-all byte matrix go to
// RUN_DIR/load_balance.h5 through LoadBalanceRecorder (written by world rank 0).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "moe/ep_dispatcher.h"
#include "src/comm/communicator.h"
#include "src/model/transformer.h"
#include "src/train/config.h"
#include "src/train/load_balance_recorder.h"
#include "src/train/model_state.h"

namespace moe {

class LoadBalanceHook {
 public:
  // lead: this rank writes the file (world rank 0).
  LoadBalanceHook(const Config& c, const std::string& run_dir, bool lead, int64_t start_step);
  // Same answer on every rank: record() is collective over the ep group on these steps.
  bool wants(int64_t step) const { return enabled_ && step % every_ == 0; }
  // step = completed steps; step_seconds = the step's wall time; the other phase times come from
  // net.phase_timer(). Every rank calls it (the a2a matrix is gathered over `ep`); the lead writes.
  void record(int64_t step, const Transformer& net, const ModelState& model, double step_seconds,
              comm::Communicator& ep);
  // The same from statistics already combined (micro-batches, pipeline stages: TrainStep):
  // `layers` holds every MoE layer of the model (with the balancing bias after the step's update,
  // or none: then this rank's parameter) and a2a the gathered ep x ep matrix. Not collective.
  void record(int64_t step, const std::vector<const LayerLoadStats*>& layers, const std::vector<int64_t>& a2a,
              const PhaseTimer& timer, const ModelState& model, double step_seconds);

 private:
  std::unique_ptr<LoadBalanceRecorder> recorder_;
  std::vector<int64_t> moe_layers_;
  std::vector<LayerLoadStats> rows_;
  std::vector<int64_t> a2a_;
  int64_t every_ = 1, num_experts_ = 0;
  bool enabled_ = false;
};

// The phase_seconds row of a step: the timer's phases plus the step's wall time.
PhaseTimes phase_times(const PhaseTimer& t, double step_seconds);

// Bytes the EpDispatchers among `dispatchers` sent this step, summed over them, gathered over
// `ep` into an ep x ep row-major matrix (row = sending rank). Collective over `ep`; `out` is
// left empty when ep has one rank.
void gather_a2a_bytes(const std::vector<const TokenDispatcher*>& dispatchers, comm::Communicator& ep,
                      std::vector<int64_t>& out);

}  // namespace moe
