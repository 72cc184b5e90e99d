// The decoder LM of DESIGN.md: tok_embeddings -> L x [h += attn(norm h); h += ffn(norm h)] -> norm ->
// output -> cross-entropy. Explicit forward and backward; activations are kept between them.
// Loss scaling: the local loss is sum(CE over local tokens) / global_tokens + aux + z, so gradients
// summed over the data-parallel group are the gradients of the global mean.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "moe/moe_layer.h"
#include "src/model/attention.h"
#include "src/model/block_acts.h"
#include "src/model/dims.h"
#include "src/model/mlp.h"
#include "src/model/params.h"
#include "src/model/phase_timer.h"
#include "src/model/recompute.h"

namespace moe {

struct StepLosses {
  double lm_sum = 0;  // sum of token cross-entropies over the local tokens
  double aux = 0;     // global aux loss (sum over MoE layers)
  double z = 0;       // global z-loss (sum over MoE layers)
};

// Makes the token dispatcher of one MoE layer (LocalDispatcher when unset; EpDispatcher under
// expert parallelism, which also fixes the layer's local expert count).
using DispatcherFactory = std::function<std::unique_ptr<TokenDispatcher>(int64_t layer)>;
// Called during backward when a stage's parameter gradients are final: L for the final norm and
// output head, then i = L-1 .. 0 for each block, then -1 for the token embeddings. Data
// parallelism starts reducing a gradient bucket from here (src/parallel/grad_buckets.h).
using GradsReadyFn = std::function<void(int64_t stage)>;

// Called around each stage's use of its parameters (stages numbered as for GradsReadyFn: -1
// embeddings, 0 .. L-1 blocks, L final norm and output head). ZeRO stage 3 gathers a stage's
// parameters in before_use and releases them in after_use (src/parallel/zero3.h). The embedding
// backward reads no parameter, so it is not announced.
class ParamStageHooks {
 public:
  virtual ~ParamStageHooks() = default;
  virtual void before_use(int64_t stage, bool backward) = 0;
  virtual void after_use(int64_t stage, bool backward) = 0;
};

// The blocks [begin, end) one pipeline stage computes (end -1: through the last block). Only
// those blocks get activations and dispatchers; the head's buffers exist only on the stage that
// owns the last block.
struct StageBlocks {
  int64_t begin = 0, end = -1;
};

class Transformer {
 public:
  // `batch` = local sequences per forward. tp (not owned; null = no tensor parallelism): this rank
  // holds H/tp heads and ffn_hidden/tp dense FFN units (parameter tables built with the same
  // TensorShard); embeddings, norms, output head and MoE layers are replicated over tp, so every
  // tp rank computes the MoE layers in full on the same tokens.
  // etp (not owned; null = none): the expert tensor-parallel group (the tp group, or with tp 1 a
  // group of dp ranks), over which each rank holds expert_hidden/etp hidden units of every local
  // expert (moe/moe_layer.h); then the tp ranks no longer compute the MoE layers in full.
  Transformer(const Config& c, int64_t batch, const DispatcherFactory& make_dispatcher = {},
              comm::Communicator* tp = nullptr, comm::Communicator* etp = nullptr, StageBlocks stage = {});

  // tokens (B, T+1): inputs are [:, :T], targets [:, 1:]. global_tokens scales the loss gradient.
  StepLosses forward(const int32_t* tokens, const ModelParams& p, const SumReducer& reduce_sum);
  // Accumulates into the gradient views g. Call after forward().
  void backward(const ModelParams& p, const ModelParams& g, double global_tokens, const GradsReadyFn& ready = {});

  // Routing context of the next forward: the optimizer step, this rank's first global token and
  // whether it is a training step (router jitter applies only then).
  void set_routing_step(int64_t step, int64_t token_offset, bool training);

  // Not owned; null (the default) = parameters are always resident.
  void set_param_hooks(ParamStageHooks* hooks) { hooks_ = hooks; }

  // Per-token losses of the last forward (N), for eval.
  const std::vector<float>& token_losses() const { return losses_; }
  // Routing statistics of the last forward, one entry per MoE layer (layer order).
  std::vector<const LayerLoadStats*> load_stats() const;
  const Dims& dims() const { return d_; }
  // Bytes held by activations (for metrics): what each block keeps for backward under
  // parallel.recompute, plus the recompute workspace (src/model/recompute.h).
  int64_t activation_bytes() const;
  // Phase times of the step (attention here, route/dispatch/experts/combine in the MoE layers,
  // communication waits in the dispatchers and gradient buckets). The owner resets it each step
  // and makes it the active timer (ActivePhaseTimer) while the step runs; unset, nothing is timed.
  PhaseTimer& phase_timer() { return timer_; }
  const PhaseTimer& phase_timer() const { return timer_; }
  // The token dispatchers of the MoE layers (layer order), e.g. for their traffic counters.
  std::vector<const TokenDispatcher*> moe_dispatchers() const;

  // The stages of forward() and backward(), one call each per step (blocks in order forward,
  // in reverse order backward); x_ and dx_ carry the residual stream and its gradient between them.
  // A pipeline stage (src/train/train_step.h) calls its own part and moves residual() and
  // residual_grad() between ranks.
  void embed_forward(const int32_t* tokens, const ModelParams& p);
  void block_forward(int64_t i, const BlockParams& bp, const SumReducer& reduce_sum, StepLosses& out);
  void head_forward(const ModelParams& p, StepLosses& out);
  void head_backward(const ModelParams& p, const ModelParams& g, double global_tokens);
  void block_backward(int64_t i, const BlockParams& bp, const BlockParams& bg);
  void embed_backward(const ModelParams& g);
  // Inputs and targets of tokens (B, T+1), without the embedding (a last stage needs the targets).
  void load_tokens(const int32_t* tokens);
  std::vector<float>& residual() { return x_; }        // (N, D)
  std::vector<float>& residual_grad() { return dx_; }  // (N, D)
  // Announce a stage's use of its parameters to the hooks (forward() and backward() do it; callers
  // of the per-stage methods do it themselves).
  void before_use(int64_t stage, bool backward) {
    if (hooks_) hooks_->before_use(stage, backward);
  }
  void after_use(int64_t stage, bool backward) {
    if (hooks_) hooks_->after_use(stage, backward);
  }

 private:
  // Block i's forward on the residual stream x into (a, f): block_forward's body, and what a
  // recompute re-runs.
  void run_block(int64_t i, float* x, AttentionActs& a, FfnActs& f, const BlockParams& bp,
                 const SumReducer& reduce_sum, StepLosses& out);

  Config c_;
  Dims d_;
  std::vector<int32_t> inputs_, targets_;
  comm::Communicator* tp_ = nullptr;
  ParamStageHooks* hooks_ = nullptr;
  comm::Communicator* etp_ = nullptr;
  std::vector<float> x_;  // (N, D) residual stream
  std::vector<float> ffn_partial_;  // (N, D) this rank's dense FFN output under tp > 1
  std::vector<AttentionActs> attn_;
  std::vector<FfnActs> ffn_;
  std::vector<std::unique_ptr<TokenDispatcher>> dispatchers_;  // one per layer (null for dense)
  std::vector<float> xf_, xnf_, rstdf_, logits_, lse_, losses_;
  // backward scratch
  std::vector<float> dx_, dxn_, dlogits_, dlosses_;
  AttentionScratch attn_scratch_;
  SwigluScratch dense_scratch_;
  PhaseTimer timer_;
  Recomputer recompute_;
  SumReducer reduce_sum_;  // the last forward's, for a recompute in backward
};

}  // namespace moe
