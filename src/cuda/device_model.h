// The transformer of src/model/transformer.h on one GPU: the same parameter table (flat fp32 master
// buffer in ParamTable order, so checkpoints and exports are unchanged), the same loss (mean token
// cross-entropy + Switch aux loss + z-loss) and the same routing, computed with kernels/cuda.
// train.precision bf16 keeps a bf16 compute copy of the weights and bf16 activations for the
// GEMMs and attention; the residual stream, norms, router, softmax/loss and the optimizer stay fp32.
//
// Scope (device_step_unsupported says what is refused and why): one rank of a data- and
// expert-parallel layout (tp = pp = etp = 1; ep > 1 takes an ep communicator; the caller reduces
// gradients: DeviceOptimizer, ZeRO 0 or 1), one micro-batch per forward
// (device_train_step.h accumulates parallel.microbatches of them), the softmax token-choice router
// ("softmax then top-k", no group limit, no jitter), dropless dispatch, no shared experts, no
// recomputation, fp32 or bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "moe/load_stats.h"
#include "moe/router.h"
#include "src/cuda/device_array.h"
#include "src/model/params.h"
#include "src/train/optimizer.h"
#include "src/train/config.h"

namespace moe::comm {
class Communicator;
}

namespace moe::gpu {

// "" when the device step runs this config, else why not (a user-facing sentence).
std::string device_step_unsupported(const Config& c);

struct DeviceLosses {
  double lm_sum = 0;  // sum of token cross-entropies
  double aux = 0, z = 0;
};

class DeviceModel {
 public:
  // `batch` = sequences per forward; all device work is ordered on `stream`. ep (size > 1): the
  // expert-parallel group, a communicator over device memory (NCCL; in-process for tests); this
  // rank then holds experts [rank E / ep, (rank + 1) E / ep) (ParamTable's ExpertShard) and
  // exchanges token rows with its peers by all-to-all-v in every MoE layer, forward and backward.
  DeviceModel(const Config& c, int64_t batch, cudaStream_t stream, comm::Communicator* ep = nullptr);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  const ParamTable& table() const;
  float* params();  // device, table().total() floats (fp32 master)
  float* grads();   // device, same layout
  void upload_params(const float* host);  // also refreshes the compute copy
  void download_params(float* host) const;
  void download_grads(float* host) const;
  // After params() changed on the device (an optimizer step): round them into the compute copy.
  void refresh_compute_copy();
  // The bf16 compute copy of the weights (table layout), or null in fp32: DeviceAdamW::step writes
  // the updated tensors there in the same pass. Tensors the optimizer does not update (the balancing
  // bias) keep their old copy: the router reads the fp32 master.
  __nv_bfloat16* compute_copy();
  void zero_grads();

  // tokens: host (batch, seq_len + 1). reduce_sum sums routing statistics over the data-parallel
  // group (identity when unset), as on the CPU.
  DeviceLosses forward(const int32_t* tokens, const SumReducer& reduce_sum = {});
  // Accumulates d(loss)/d(params) into grads(); the loss is lm_sum / global_tokens + aux + z.
  void backward(double global_tokens);

  // Expert parallelism: bytes of token rows this rank sent to each ep rank (its own included) since
  // the last forward began: dispatch and combine, their backward twins and a recomputed forward's
  // (as EpDispatcher::sent_bytes); empty without ep.
  const std::vector<int64_t>& ep_sent_bytes() const;
  // Per MoE layer (layer order), the routing statistics of the last forward.
  const std::vector<LayerLoadStats>& load_stats() const;
  // Per-token losses of the last forward (copied from the device).
  std::vector<float> token_losses() const;
  int64_t activation_bytes() const;
  // The expert GEMMs' rows in the last forward, summed over the MoE layers: routed (tokens x top_k)
  // and computed (blocked layouts count their padding rows; train.gpu_expert_padding), how many
  // layers took the blocked layout, and one_block_rows: the rows of one block per expert (the
  // largest expert's rows, rounded up, for each non-empty expert): over the routed rows, the
  // allowance that one-block layout would take.
  struct ExpertRowUse {
    int64_t routed = 0, computed = 0, blocked_layers = 0, one_block_rows = 0;
  };
  ExpertRowUse expert_row_use() const;
  // The attention kernel the step uses: "flash, 64-row blocks (64: 1.23 ms, 128: 1.45 ms)" where
  // the flash kernels' block shapes were timed on this model's attention at construction and the
  // faster kept; "flash, 64-row blocks" where only one applies; "cuBLAS" otherwise.
  std::string attention_kernel() const;
  // Per-phase device time (ms) of the forward/backward calls since the last phase_times(), when
  // enabled (events on the stream; the per-layer routing synchronisation is part of "moe fwd").
  void enable_phase_times(bool on);
  std::vector<std::pair<std::string, double>> phase_times();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// AdamW on the device (kernels/cuda/adamw.cuh) with the rules of src/train/optimizer.h: decoupled
// weight decay except on norms, non-trainable tensors (the balancing bias) left alone, global-norm
// clipping.
class DeviceAdamW {
 public:
  // frozen (one flag per table parameter, or empty): excluded from updates and the norm.
  DeviceAdamW(const ParamTable& table, const OptimConfig& cfg, cudaStream_t stream, std::vector<bool> frozen = {});
  bool updates(size_t i) const { return table_.params()[i].trainable && (frozen_.empty() || !frozen_[i]); }
  // Sum of squares of the updated gradients (synchronises the stream); split as AdamW::grad_sq_sums
  // (tensors split over a group, i.e. expert slices under ep > 1, apart from the replicated ones).
  double grad_sq_sum(const float* grads) const;
  AdamW::SqSums grad_sq_sums(const float* grads) const;
  // One update with the gradients times clip_scale (the gradient buffer is not modified); with
  // compute_copy (DeviceModel::compute_copy) the updated weights are also rounded into it.
  void step(float* params, float* grads, double lr, double clip_scale, __nv_bfloat16* compute_copy = nullptr);
  float* m() { return m_.get(); }
  float* v() { return v_.get(); }
  int64_t steps_done() const { return step_; }
  void set_steps_done(int64_t s) { step_ = s; }

 private:
  const ParamTable& table_;
  OptimConfig cfg_;
  cudaStream_t stream_;
  DeviceArray<float> m_, v_;  // table layout (entries of tensors that are not updated stay 0)
  DeviceArray<double> sq_;
  std::vector<bool> frozen_;
  int64_t step_ = 0;
};

}  // namespace moe::gpu
