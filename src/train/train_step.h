// One training step's forward, backward and gradient reduction, over parallel.microbatches
// micro-batches and, with parallel.pp > 1, as one stage of a pipeline (docs/distributed.md,
// "Pipeline parallelism"). trainer.cpp is the loop around it.
//
// Each in-flight micro-batch has its own activation slot (a Transformer built for this stage's
// blocks and the micro-batch's rows, with its own MoE dispatchers); the stage allocates as many
// slots as its schedule ever has in flight (1f1b: min(m, pp - stage), gpipe: m), so the activation
// memory of the metrics is what the schedule really keeps alive. Micro-batch j uses slot j % slots.
// With parallel.virtual_stages = v > 1 (interleaved 1F1B) the stage runs v model chunks, each
// with its own slots.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <nlohmann/json.hpp>
#include <vector>

#include "src/comm/process_grid.h"
#include "src/model/transformer.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/pipeline_layout.h"
#include "src/parallel/pipeline_schedule.h"
#include "src/train/load_balance_hook.h"
#include "src/train/model_state.h"
#include "src/train/routing_update.h"

namespace moe {

class TrainStep {
 public:
  // local_rows: sequences of this dp rank per step (all micro-batches).
  TrainStep(const Config& c, const comm::ProcessGrid& grid, int64_t local_rows, const DispatcherFactory& make_dispatcher,
            comm::Communicator* tp, comm::Communicator* etp = nullptr);

  // Forward and backward of every micro-batch of the step on this stage, gradients accumulated
  // into model.g and reduced over dp / edp by `buckets` (finished on return). tokens: this dp
  // rank's rows (local_rows, T+1). Returns lm_sum of this dp rank (summed over the stages: only
  // the last computes it) and the global aux and z losses (summed over the stages' MoE layers).
  // weights: the parameters forward and backward read (model.p, or the rounded compute copy under
  // train.precision bf16/fp16); gradients go to model.g.
  StepLosses run(int64_t step, const int32_t* tokens, const ModelParams& weights, ModelState& model,
                 GradBuckets& buckets);
  // ZeRO stage 3: every slot announces its stages' parameter use to `hooks` (not owned).
  void set_param_hooks(ParamStageHooks* hooks);

  // Slot 0, which holds the step's phase timer.
  Transformer& front() { return *slots_.front(); }
  // The step's routing statistics of this stage's MoE layers (micro-batches combined), in layer order.
  std::vector<const LayerLoadStats*> load_stats() const;
  // Routing summary over every stage (collective over the pp group).
  StepRouting routing() const;
  // Peak activation bytes of this stage: the bytes of all its slots.
  int64_t activation_bytes() const;
  // With pp > 1: mem_activations (max over stages), mem_activations_stage, bubble_frac (measured
  // since the last call, mean over stages) and bubble_frac_theory. Collective over the pp group.
  void add_pipeline_metrics(nlohmann::json& rec);
  // Aux-loss-free balancing of this stage's MoE layers from the step's global counts (summed
  // over the micro-batches; with one micro-batch the forward's own update). Not collective.
  void update_balancing_bias(ModelState& model) const;
  // Writes the step's row of the load-balance profile through `hook` (every MoE layer of the
  // model, micro-batches combined). Collective over ep and pp; call where hook.wants(step).
  void record_load_balance(LoadBalanceHook& hook, int64_t step, const ModelState& model, double seconds);

  const StageLayout& layout() const { return layout_; }
  int64_t stage() const { return stage_; }
  int64_t slots() const { return int64_t(slots_.size()); }

 private:
  void forward(const PipeOp& op, Transformer& net, const int32_t* tokens, const ModelParams& p, StepLosses& out);
  void backward(const PipeOp& op, Transformer& net, const ModelParams& p, ModelState& model, bool final,
                GradBuckets& buckets);
  void accumulate_stats(const Transformer& net, int64_t vstage, bool first_micro);
  size_t slot_of(const PipeOp& op) const;
  void accumulate_a2a(const Transformer& net);
  void wait_sends(size_t slot);
  void timed_recv(std::vector<float>& buf, int peer, int tag);

  Config c_;
  const comm::ProcessGrid& grid_;
  StageLayout layout_;
  int64_t stage_ = 0, pp_ = 1, m_ = 1, v_ = 1, micro_rows_ = 0, step_ = 0;
  double global_tokens_ = 0;
  std::vector<PipeOp> ops_;
  std::vector<std::unique_ptr<Transformer>> slots_;  // chunk c owns slots [slot_base_[c], slot_base_[c + 1])
  std::vector<size_t> slot_base_;
  std::vector<size_t> final_backward_;  // per chunk: index in ops_ of its last backward
  std::vector<std::vector<comm::RequestPtr>> sends_;  // per slot: sends still reading its buffers
  SumReducer reduce_;
  std::vector<int64_t> moe_layers_;    // this stage's MoE layers
  std::vector<LayerLoadStats> stats_;  // their step totals
  std::vector<int64_t> a2a_sent_;      // bytes this rank's dispatchers sent per ep peer this step
  double wait_s_ = 0, busy_s_ = 0;     // pipeline waits and schedule time since the last metrics
};

}  // namespace moe
