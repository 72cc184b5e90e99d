#include "src/train/trainer_cuda.h"

#include "src/core/error.h"

#ifdef MOE_WITH_CUDA
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <nccl.h>

#include "kernels/cuda/cuda_check.h"
#include "moe/ep_dispatcher.h"
#include "src/comm/cuda/nccl_communicator.h"
#include "src/cuda/device_model.h"
#include "src/cuda/device_optimizer.h"
#include "src/cuda/device_peak.h"
#include "src/cuda/device_train_step.h"
#include "src/train/checkpoint_state.h"
#include "src/train/evaluate.h"
#include "src/train/finetune.h"
#include "src/train/flops.h"
#include "src/train/load_balance_hook.h"
#include "src/train/lr_schedule.h"
#include "src/train/micro_batches.h"
#include "src/train/metrics.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"
#include "src/train/run_common.h"
#endif

namespace moe {

#ifndef MOE_WITH_CUDA

TrainResult train_on_device(const Config& c, const TrainOptions&, comm::Communicator&, const comm::ProcessGrid&,
                            const std::string&) {
  throw ConfigError("train.device cuda in " + c.source + ": this build has no CUDA backend");
}

#else

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// One GPU per rank: the rank's index on its node (Open MPI tells it). NCCL cannot run two ranks
// of a communicator on one GPU, so more ranks on a node than GPUs is a configuration error.
void select_gpu(const Config& c, const comm::Communicator& world) {
  int count = 0;
  MOE_CUDA_CHECK(cudaGetDeviceCount(&count));
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const char* local_size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  const int index = local ? std::atoi(local) : world.rank();
  const int ranks_here = local_size ? std::atoi(local_size) : world.size();
  if (ranks_here > count)
    throw ConfigError("train.device cuda in " + c.source + ": " + std::to_string(ranks_here) +
                      " ranks on this node but " + std::to_string(count) +
                      " GPU(s): start one rank per GPU (mpirun -np <GPUs per node> per node)");
  MOE_CUDA_CHECK(cudaSetDevice(index));
}

// The balancing bias the forward computed (moe.bias_update_rate > 0) goes into the device weights
// (pageable host memory: the copy has read it when cudaMemcpyAsync returns).
void apply_balancing_bias(const Config& c, const ParamTable& t, const std::vector<LayerLoadStats>& stats,
                          gpu::DeviceModel& dm, cudaStream_t s) {
  if (c.moe.bias_update_rate <= 0) return;
  size_t k = 0;
  for (int64_t i = 0; i < c.model.n_layers; ++i) {
    if (!c.model.is_moe_layer(i)) continue;
    const LayerLoadStats& st = stats[k++];
    if (st.bias.empty()) continue;
    const ParamInfo& p = t.params()[size_t(t.index_of("layers." + std::to_string(i) + ".moe.router.bias"))];
    MOE_CUDA_CHECK(cudaMemcpyAsync(dm.params() + p.offset, st.bias.data(), sizeof(float) * st.bias.size(),
                                   cudaMemcpyHostToDevice, s));
  }
}

}  // namespace

TrainResult train_on_device(const Config& c, const TrainOptions& opt, comm::Communicator& world,
                            const comm::ProcessGrid& grid, const std::string& ckpt_root) {
  comm::Communicator& dp = *grid.dp;
  const bool lead = world.rank() == 0;
  select_gpu(c, world);
  cudaStream_t stream = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreate(&stream));

  // Expert parallelism: this rank holds its ep group's share of every expert tensor, as on the CPU.
  const ParallelConfig& pc = c.parallel;
  ModelState model(c, ExpertShard{pc.ep, grid.coord.ep});
  init_params(model.table, model.params.data(), c.train.seed);
  const std::vector<bool> frozen = frozen_params(c, model.table);
  AdamW host_optim(model.table, c.optim, frozen);  // the checkpoint format's moments

  data::ShardedLoader loader(run_loader_options(c, dp));
  const int64_t start_step = restore_or_init(c, opt, ckpt_root, model, host_optim, loader, grid);

  const int64_t local_rows = c.train.batch_size / dp.size();
  // Device-memory groups (NCCL; each id travels over the MPI group): token rows over ep, dense
  // gradients over dp, expert gradients over edp (the ranks holding the same experts).
  // Their blocking waits arm the process watchdog (parallel.timeout_s, set on world), so a stalled
  // NCCL collective is reported with rank, group and operation instead of hanging.
  const comm::NcclWatch watch{[&world](const std::string& group, const char* op) { return world.watch(group, op); },
                              {}};
  auto nccl_group = [&](comm::Communicator& g, const char* name) {
    return g.size() > 1 ? comm::make_nccl_communicator(g, name, stream, watch) : nullptr;
  };
  const std::shared_ptr<comm::NcclCommunicator> ep_nccl = nccl_group(*grid.ep, "ep-nccl");
  const std::shared_ptr<comm::NcclCommunicator> dp_nccl = nccl_group(dp, "dp-nccl");
  const std::shared_ptr<comm::NcclCommunicator> edp_nccl = pc.ep > 1 ? nccl_group(*grid.edp, "edp-nccl") : dp_nccl;

  // Activations for one micro-batch; the step accumulates the gradients of all of them.
  gpu::DeviceModel dm(micro_batch_config(c), local_rows / c.parallel.microbatches, stream, ep_nccl.get());
  gpu::DeviceOptimizer optim(c, dm.table(), frozen,
                             {dp_nccl.get(), edp_nccl.get(), &dp, grid.edp.get(), grid.ep.get()}, stream);
  dm.upload_params(model.params.data());
  optim.load(host_optim);

  // Evaluation runs the CPU model on this rank's weights: under ep > 1 its experts are a slice, so
  // the tokens travel to the other slices as in CPU training.
  const DispatcherFactory eval_dispatcher = [&](int64_t) -> std::unique_ptr<TokenDispatcher> {
    if (pc.ep > 1) return std::make_unique<EpDispatcher>(*grid.ep, &dp, c.moe.num_experts);
    return std::make_unique<LocalDispatcher>(&dp);
  };

  MetricsWriter metrics(lead ? (fs::path(opt.run_dir) / "metrics.jsonl").string() : "");
  const double global_tokens = double(c.train.batch_size * c.model.seq_len);
  const double flops_per_token = train_flops_per_token(c);
  const double peak = gpu::gemm_peak_flops(c.train.precision == "bf16", stream) * world.size();
  const SumReducer reduce = [&](std::vector<double>& v) { dp.allreduce_sum(v.data(), int64_t(v.size())); };
  LoadBalanceHook load_balance(c, opt.run_dir, lead, start_step);
  const PhaseTimer no_phases;  // the device step's phases are not split on the host timer
  std::vector<int32_t> tokens;
  const int64_t P = model.table.total();

  auto save_checkpoint = [&](int64_t step) {
    dm.download_params(model.params.data());
    optim.save(host_optim);  // collective under ZeRO
    save_training_state(c, ckpt_root, step, model, host_optim, loader, grid);
  };

  TrainResult result;
  result.steps_done = start_step;
  RunProgress progress(start_step, c.train.steps);
  for (int64_t step = start_step; step < c.train.steps; ++step) {
    const auto step_start = Clock::now();
    loader.next(tokens);
    dm.zero_grads();
    const gpu::DeviceStepOutput so = gpu::device_forward_backward(c, dm, tokens.data(), local_rows, global_tokens, reduce);
    const gpu::DeviceLosses& sl = so.losses;
    optim.reduce(dm.grads());
    double lm_sum = sl.lm_sum;
    dp.allreduce_sum(&lm_sum, 1);
    const double lm = lm_sum / global_tokens, loss = lm + sl.aux + sl.z;
    const double gnorm = optim.norm(dm.grads());
    if (!std::isfinite(loss) || !std::isfinite(gnorm))
      throw Error(kExitOther, "non-finite training state at step " + std::to_string(step + 1) + " (loss " +
                                  std::to_string(loss) + ", grad norm " + std::to_string(gnorm) +
                                  ") on the GPU; rerun with train.device cpu for the per-tensor report");
    const double lr = lr_at(step, c.train.steps, c.optim.warmup_steps, c.optim.lr, c.optim.min_lr);
    optim.step(dm, lr, clip_scale(gnorm, c.optim.grad_clip));
    apply_balancing_bias(c, model.table, so.stats, dm, stream);
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
    const auto step_end = Clock::now();
    if (load_balance.wants(step + 1)) {
      std::vector<const LayerLoadStats*> layers;
      for (const LayerLoadStats& s : so.stats) layers.push_back(&s);
      // The ep x ep matrix of all-to-all bytes (row = sending rank), as the CPU trainer records it.
      std::vector<int64_t> a2a;
      if (const int64_t n = int64_t(so.ep_sent_bytes.size()); n > 1) {
        a2a.resize(size_t(n * n));
        grid.ep->allgather(so.ep_sent_bytes.data(), a2a.data(), n * int64_t(sizeof(int64_t)));
      }
      load_balance.record(step + 1, layers, a2a, no_phases, model,
                          std::chrono::duration<double>(step_end - step_start).count());
    }
    result.steps_done = step + 1;
    result.last_loss = loss;
    progress.step_done();

    const bool exiting = stop_after_step(world, opt.exit_after, step + 1 - start_step, step + 1, lead);
    const bool last = step + 1 == c.train.steps || exiting;
    if ((step + 1) % c.train.log_every == 0 || last) {
      const double tps = progress.tokens_per_s(global_tokens);
      const double mfu = tps * flops_per_token / peak;
      double worst = 0;
      for (const LayerLoadStats& s : so.stats) worst = std::max(worst, s.max_over_mean());
      // fp32 master and gradients (+ the bf16 compute copy and weight gradients), AdamW's two moments.
      const int64_t f = sizeof(float), half = c.train.precision == "bf16" ? 2 : 0;
      const int64_t weights = P * (f + half), moments = 2 * optim.state_floats() * f;
      nlohmann::json rec = {{"step", step + 1},     {"loss", loss},        {"lm_loss", lm},
                            {"aux_loss", sl.aux},   {"z_loss", sl.z},      {"lr", lr},
                            {"grad_norm", gnorm},   {"tokens_per_s", tps}, {"mfu", mfu},
                            {"dropped_frac", 0.0},  {"max_over_mean", worst}, {"zero_stage", optim.zero_stage()},
                            {"device", "cuda"},     {"attention", dm.attention_kernel()}};
      rec["mem_params"] = weights;
      rec["mem_grads"] = weights;
      rec["mem_optimizer"] = moments;
      rec["mem_activations"] = dm.activation_bytes();
      rec["mem_comm"] = 0;
      rec["mem_bytes"] = 2 * weights + moments + dm.activation_bytes();
      if (c.train.eval_every > 0 && ((step + 1) % c.train.eval_every == 0 || last)) {
        dm.download_params(model.params.data());  // eval runs the CPU model on the same weights
        rec["eval_loss"] = evaluate(c, model.p, c.train.eval_batches, dp, eval_dispatcher).loss;
      }
      metrics.write(rec);
      if (lead && !opt.quiet) {
        char extra[64];
        std::snprintf(extra, sizeof(extra), " | worst max/mean %.2f | cuda", worst);
        progress.print(step + 1, loss, tps, mfu, extra);
      }
      result.tokens_per_s = tps;
      progress.restart_interval();
    }
    if ((c.checkpoint.every > 0 && (step + 1) % c.checkpoint.every == 0) || last) save_checkpoint(step + 1);
    if (exiting) break;
  }
  MOE_CUDA_CHECK(cudaStreamDestroy(stream));
  return result;
}

#endif

}  // namespace moe
