#include "src/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "moe/ep_dispatcher.h"
#include "src/comm/process_grid.h"
#include "src/core/error.h"
#include "src/model/transformer.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/safety.h"
#include "src/parallel/tensor_parallel.h"
#include "src/core/page_memory.h"
#include "src/core/process_memory.h"
#include "src/parallel/zero.h"
#include "src/parallel/zero3.h"
#include "src/parallel/zero_optimizer.h"
#include "src/parallel/zero_tp.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/device_select.h"
#include "src/train/evaluate.h"
#include "src/train/fault_injection.h"
#include "src/train/finetune.h"
#include "src/train/flops.h"
#include "src/train/load_balance_hook.h"
#include "src/train/loss_scaler.h"
#include "src/train/lr_schedule.h"
#include "src/train/metrics.h"
#include "src/train/model_state.h"
#include "src/train/nonfinite.h"
#include "src/train/optimizer.h"
#include "src/train/pipeline_state.h"
#include "src/train/precision_weights.h"
#include "src/train/profile_trace.h"
#include "src/train/routing_update.h"
#include "src/train/run_common.h"
#include "src/train/sharded_master.h"
#include "src/train/stop_signal.h"
#include "src/train/threads.h"
#include "src/train/train_step.h"
#include "src/train/trainer_cuda.h"
#include "src/train/zero3_compute.h"

namespace moe {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Parallel features whose config keys exist before their implementation lands are refused
// loudly rather than silently ignored.
void require_supported(const Config& c) {
  auto refuse = [&](const std::string& key, const std::string& why) {
    throw ConfigError(key + " in " + c.source + ": " + why);
  };
  const auto& p = c.parallel;
  if (p.etp != 1 && p.etp != p.tp && p.tp != 1)  // etp groups are the tp groups, or span dp ranks (tp 1)
    refuse("parallel.etp", "expert tensor parallelism runs over the tp group or, with tp 1, over dp ranks; use 1 or "
                               "parallel.tp (" + std::to_string(p.tp) + ")");
}

std::string checkpoint_root(const Config& c, const std::string& run_dir) {
  return c.checkpoint.dir.empty() ? (fs::path(run_dir) / "checkpoints").string() : c.checkpoint.dir;
}

// A full or unwritable run directory is a data error (exit 3) naming the path, not a crash.
void write_run_config(const std::string& run_dir, const std::string& text) {
  const fs::path path = fs::path(run_dir) / "config.yaml";
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw DataError("cannot create the run directory " + run_dir + " (" + ec.message() + "); pass a writable --run-dir");
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) throw DataError("cannot write " + path.string() + ": is the disk full or the run directory unwritable?");
}

// Per-rank memory (bytes) of the tensors this process holds: parameters, gradients (the full
// backward workspace plus, under ZeRO 2, the reduced shard), optimizer moments, activations and
// communication staging; mem_bytes is their sum. Buffers that ZeRO releases in part (gradients from
// stage 2, parameters in stage 3) count the bytes they really held at the step's peak (mincore), and
// so do a pipeline stage's (pipelined: only its own tensors stay resident).
void add_memory(nlohmann::json& rec, const ModelState& model, const Zero3Params* z3, const ShardedMaster* sm,
                const GradBuckets& buckets,
                int64_t zero, bool pipelined, int64_t optim_floats, size_t grad_shard_floats,
                int64_t activation_bytes, size_t staging_floats) {
  const int64_t f = sizeof(float);
  const int64_t all = int64_t(model.params.size());
  const int64_t params = z3 ? z3->peak_params_bytes()
                            : sm ? sm->peak_master_bytes()
                            : pipelined ? resident_bytes(model.params.data(), all) : all * f;
  const int64_t full_grads = zero >= 2 ? buckets.peak_resident_bytes()
                                       : pipelined ? resident_bytes(model.grads.data(), all) : all * f;
  const int64_t grads = full_grads + int64_t(grad_shard_floats) * f;
  const int64_t optimizer = optim_floats * f, comm = int64_t(staging_floats) * f;
  rec["mem_params"] = params;
  rec["mem_grads"] = grads;
  rec["mem_optimizer"] = optimizer;
  rec["mem_activations"] = activation_bytes;
  rec["mem_comm"] = comm;
  rec["mem_bytes"] = params + grads + optimizer + activation_bytes + comm;
}

}  // namespace

TrainResult train(const Config& c, const TrainOptions& opt, comm::Communicator& world) {
  check_same_config(dump_config(c), c.source, world);  // before anything a rank could decide alone
  require_supported(c);
  validate_layout(c, world.size());
  world.set_timeout(c.parallel.timeout_s);
  install_stop_handlers();
  const auto& pc = c.parallel;
  const comm::ProcessGrid grid =
      comm::make_process_grid(world, {int(pc.pp), int(pc.dp), int(pc.tp), int(pc.ep), int(pc.etp)});
  comm::Communicator& dp = *grid.dp;
  comm::Communicator& ep = *grid.ep;
  const bool lead = world.rank() == 0;
  configure_threads(world);

  if (lead) write_run_config(opt.run_dir, dump_config(c));
  world.barrier();
  if (resolve_device(c, world) == "cuda") return train_on_device(c, opt, world, grid, checkpoint_root(c, opt.run_dir));

  ModelState model(c, ExpertShard{pc.ep, grid.coord.ep, pc.etp, grid.coord.etp}, TensorShard{pc.tp, grid.coord.tp});
  const std::vector<bool> frozen = frozen_params(c, model.table);  // finetune.freeze: no update, no state
  // A pipeline stage reduces, clips and updates only its own tensors (the others are released below).
  const StageLayout stages = make_stage_layout(c);
  const std::vector<bool> foreign = foreign_params(stages, model.table, grid.coord.pp);
  std::vector<bool> not_updated = foreign;
  for (size_t i = 0; i < frozen.size(); ++i) not_updated[i] = not_updated[i] || frozen[i];
  const int64_t zero = pc.zero_stage;
  // From stage 2 on, a stage's gradients are released once reduced (and stage 3 gathers parameters
  // stage by stage), so buckets never span two stages.
  GradBuckets buckets(model.table, c.model.n_layers, dp, *grid.edp, int64_t(4) << 20, foreign, zero >= 2);
  // ZeRO (stage >= 1) keeps moments for this rank's shard only; stage 0 keeps a full AdamW.
  std::unique_ptr<AdamW> optim;
  std::unique_ptr<ZeroPartition> zpart;
  std::unique_ptr<ZeroAdamW> zoptim;
  std::vector<float> grad_shard, gather_staging;
  if (zero == 0) {
    optim = std::make_unique<AdamW>(model.table, c.optim, not_updated);
  } else {
    zpart = std::make_unique<ZeroPartition>(buckets.buckets(), dp, *grid.edp);
    zoptim = std::make_unique<ZeroAdamW>(model.table, c.optim, frozen, *zpart);
    gather_staging.reserve(size_t(zpart->max_gather_floats()));
    if (zero >= 2) {
      grad_shard.assign(size_t(zpart->shard_floats()), 0.0f);
      buckets.reduce_scatter_into(zpart.get(), grad_shard.data(), /*release=*/true);
      release_floats(model.grads.data(), int64_t(model.grads.size()));  // released = zero, no pages
    }
  }

  // A sharded master (ZeRO 3; ZeRO 1 and 2 under bf16 / fp16) is initialised in the owned ranges
  // only, so no rank ever holds the whole model at start-up (a checkpoint load still does).
  if (zpart && (zero == 3 || parse_precision(c.train.precision) != Precision::fp32))
    init_params_ranges(model.table, model.params.data(), c.train.seed, zpart->owned_ranges());
  else
    init_params(model.table, model.params.data(), c.train.seed);

  data::ShardedLoader loader(run_loader_options(c, dp));

  const std::string ckpt_root = checkpoint_root(c, opt.run_dir);
  int64_t start_step = 0;
  if (zoptim) {  // checkpoints hold full moments (the stage-0 format): load them, keep this shard
    AdamW full(model.table, c.optim, frozen);
    start_step = restore_or_init(c, opt, ckpt_root, model, full, loader, grid);
    zoptim->from_full(full);
  } else {
    start_step = restore_or_init(c, opt, ckpt_root, model, *optim, loader, grid);
  }
  ComputeWeights compute_weights(c, model.table);  // train.precision bf16 | fp16 (docs/precision.md)
  LossScaler scaler(c);
  scaler.restore_from_resume(c, ckpt_root);

  const int64_t local_rows = c.train.batch_size / dp.size();
  // Capacity is decided over the dp group (the whole micro-batch); tokens travel over ep.
  const DispatcherFactory make_dispatcher = [&](int64_t) -> std::unique_ptr<TokenDispatcher> {
    if (pc.ep > 1) return std::make_unique<EpDispatcher>(ep, &dp, c.moe.num_experts);
    return std::make_unique<LocalDispatcher>(&dp);
  };
  comm::Communicator* tp = pc.tp > 1 ? grid.tp.get() : nullptr;
  comm::Communicator* etp = pc.etp > 1 ? grid.etp.get() : nullptr;
  TrainStep stepper(c, grid, local_rows, make_dispatcher, tp, etp);
  Transformer& net = stepper.front();
  std::unique_ptr<Zero3Params> z3;
  std::unique_ptr<Zero3ComputeHooks> z3_compute;  // bf16 | fp16: the compute copy follows the gathers
  if (zero == 3) {  // from here on only the owned ranges stay resident (and gradients: none)
    const int64_t total = int64_t(model.params.size());
    z3 = std::make_unique<Zero3Params>(*zpart, c.model.n_layers, model.params.data(), total);
    z3->release_all();
    if (compute_weights.precision() != Precision::fp32)
      z3_compute = std::make_unique<Zero3ComputeHooks>(*z3, *zpart, c.model.n_layers, compute_weights, model);
    stepper.set_param_hooks(z3_compute ? static_cast<ParamStageHooks*>(z3_compute.get()) : z3.get());
  }
  if (pc.pp > 1) {  // a stage keeps only its own tensors resident (src/train/pipeline_state.h)
    release_foreign(model.table, foreign, model.params.data());
    release_foreign(model.table, foreign, model.grads.data());
    compute_weights.skip_tensors(model.table, foreign);
  }
  std::unique_ptr<ShardedMaster> smaster;  // zero 1 | 2, bf16 | fp16: the master keeps only owned floats
  if (zpart && !z3 && compute_weights.precision() != Precision::fp32)
    smaster = std::make_unique<ShardedMaster>(*zpart, compute_weights, model);
  MetricsWriter metrics(lead ? (fs::path(opt.run_dir) / "metrics.jsonl").string() : "");
  const double global_tokens = double(c.train.batch_size * c.model.seq_len);
  const double flops_per_token = train_flops_per_token(c);
  const double peak = measure_sgemm_peak() * world.size();
  const SumReducer reduce = [&](std::vector<double>& v) { dp.allreduce_sum(v.data(), int64_t(v.size())); };
  std::vector<int32_t> tokens;
  LoadBalanceHook load_balance(c, opt.run_dir, lead, start_step);
  PhaseTrace trace(c, opt.run_dir, world.rank());
  // Phases are timed only when something records or traces them (src/model/phase_timer.h).
  PhaseTimer& timer = net.phase_timer();
  const ActivePhaseTimer timing(c.profile.load_balance || trace.enabled() ? &timer : nullptr);

  // ZeRO gathers the moments into a full-size AdamW for the checkpoint (collective over dp / edp).
  // Under pp the first stage gathers every stage's tensors and moments, then saves as pp 1 would.
  auto save_checkpoint = [&](int64_t step) {
    const nlohmann::json extra = scaler.enabled() ? nlohmann::json{{"loss_scaler", scaler.state()}} : nlohmann::json::object();
    if (!zoptim && pc.pp == 1) return save_training_state(c, ckpt_root, step, model, *optim, loader, grid, extra);
    AdamW full(model.table, c.optim, frozen);
    if (zoptim) zoptim->to_full(full, gather_staging);
    else copy_moments(model.table, *optim, full);
    if (z3) z3->gather_all();  // the checkpoint holds full tensors, as for every stage
    if (smaster) smaster->gather_master(gather_staging);
    if (pc.pp > 1) gather_pipeline_state(stages, model, full, *grid.pp);
    save_training_state(c, ckpt_root, step, model, full, loader, grid, extra);
    if (z3) z3->release_all();
    if (smaster) smaster->release_master();
    if (pc.pp > 1) release_foreign(model.table, foreign, model.params.data());
  };

  const int64_t startup_rss = peak_rss_bytes();  // start-up's peak: before the first step
  TrainResult result;
  result.steps_done = start_step;
  RunProgress progress(start_step, c.train.steps);
  for (int64_t step = start_step; step < c.train.steps; ++step) {
    stall_for_test(world.rank(), step + 1);
    const auto step_start = Clock::now();
    timer.reset();
    timer.set_tracing(trace.wants(step + 1));
    loader.next(tokens);
    // From stage 2 on, every gradient range was released (= zeroed) once reduced.
    if (zero < 2 && pc.pp > 1) zero_own_grads(model.table, foreign, model.grads.data());
    else if (zero < 2) std::fill(model.grads.begin(), model.grads.end(), 0.0f);
    if (inject_nan_for_test(step + 1, model.table, model.params.data())) compute_weights.invalidate();
    const int64_t token_offset = int64_t(dp.rank()) * local_rows * c.model.seq_len;
    if (z3_compute) z3_compute->begin_step();
    if (smaster) smaster->refresh_copy();  // rounds the owned master, all-gathers the copy
    const ModelParams& wp = compute_weights.refresh(model);  // stage 3: views only (rounded per stage)
    const double step_scale = scaler.scale();
    StepLosses sl;
    {
      const PrecisionScope precision(compute_weights.precision(), step_scale);
      sl = stepper.run(step, tokens.data(), wp, model, buckets);  // micro-batches, pipeline, dp reduction
    }
    if (tp && !etp) scale_expert_grads(model.table, model.grads.data(), 1.0f / float(pc.tp));
    if (tp && !etp && zero >= 2) scale_expert_shard(*zpart, grad_shard.data(), 1.0f / float(pc.tp));
    inject_overflow_for_test(step + 1, world.rank(), zero >= 2 ? grad_shard.data() : model.grads.data());
    double lm_sum = sl.lm_sum;
    dp.allreduce_sum(&lm_sum, 1);
    const double lm = lm_sum / global_tokens, loss = lm + sl.aux + sl.z;
    const float* zgrads = zero >= 2 ? grad_shard.data() : model.grads.data();
    double gsq = 0;
    if (zoptim) {
      // Owned ranges partition dense tensors over dp and expert slices over edp (src/parallel/zero_tp.h).
      gsq = zero_grad_sq_norm(*zoptim, model.table, zgrads, zero >= 2, dp, tp);
    } else {
      // Replicated tensors count once; expert slices differ over the ep group.
      AdamW::SqSums sq = optim->grad_sq_sums(model.grads.data());
      // Tensor-parallel slices differ over tp instead (each tp rank sees the same data).
      double tp_sq = split_grad_sq_sum(model.table, model.grads.data(), "tp", [&](size_t i) { return optim->updates(i); });
      sq.sharded -= tp_sq;
      ep.allreduce_sum(&sq.sharded, 1);
      if (etp) etp->allreduce_sum(&sq.sharded, 1);  // expert slices also differ over etp
      if (tp) tp->allreduce_sum(&tp_sq, 1);
      gsq = sq.replicated + sq.sharded + tp_sq;
    }
    if (pc.pp > 1) grid.pp->allreduce_sum(&gsq, 1);  // each stage counted its own tensors
    const double gnorm = std::sqrt(gsq) / step_scale;
    const bool skip = scaler.should_skip(loss, gnorm, world);  // fp16: every rank skips together
    // Both are global values, so every rank takes this branch together (the scan is collective).
    // It runs the whole model on every rank: first every rank gets every stage's tensors.
    const bool nonfinite = !skip && (!std::isfinite(loss) || !std::isfinite(gnorm));
    if (nonfinite && z3) z3->gather_all();
    if (nonfinite && smaster) smaster->gather_master(gather_staging);
    if (nonfinite && pc.pp > 1) gather_pipeline_params(stages, model, *grid.pp);
    if (nonfinite)
      throw Error(kExitOther, describe_nonfinite(c, {step + 1, loss, gnorm, tokens.data(), local_rows, token_offset},
                                                 model, make_dispatcher, reduce, world, tp, etp));
    const double lr = lr_at(step, c.train.steps, c.optim.warmup_steps, c.optim.lr, c.optim.min_lr);
    // The bias update and the load-balance profile read the whole balancing bias from the master.
    if (smaster && (c.moe.bias_update_rate > 0 || load_balance.wants(step + 1))) smaster->refill_untrained();
    if (!skip) {
      PhaseScope timed(Phase::optimizer);
      const double clip = clip_scale(gnorm, c.optim.grad_clip) / step_scale;  // also unscales fp16 grads
      if (zoptim) {
        zoptim->step(model.params.data(), zgrads, zero >= 2, lr, clip);
        // Every rank gets the updated parameters (stage 3: gathered when next used; a sharded
        // master: its rounded copy is gathered at the next step's start).
        if (!z3 && !smaster) zpart->gather(model.params.data(), gather_staging);
      } else {
        optim->step(model.params.data(), model.grads.data(), lr, clip, &compute_weights);  // + the compute copy
      }
      stepper.update_balancing_bias(model);
    }
    const auto step_end = Clock::now();
    if (load_balance.wants(step + 1))
      stepper.record_load_balance(load_balance, step + 1, model, std::chrono::duration<double>(step_end - step_start).count());
    trace.add_step(step + 1, step_start, step_end, timer.spans());
    result.steps_done = step + 1;
    result.last_loss = loss;
    progress.step_done();

    const bool exiting = stop_after_step(world, opt.exit_after, step + 1 - start_step, step + 1, lead);
    const bool last = step + 1 == c.train.steps || exiting;
    if ((step + 1) % c.train.log_every == 0 || last) {
      const double tps = progress.tokens_per_s(global_tokens);
      const double mfu = tps * flops_per_token / peak;
      StepRouting routing = stepper.routing();
      nlohmann::json rec = {{"step", step + 1},       {"loss", loss},          {"lm_loss", lm},
                            {"aux_loss", sl.aux},     {"z_loss", sl.z},        {"lr", lr},
                            {"grad_norm", gnorm},     {"tokens_per_s", tps},   {"mfu", mfu},
                            {"dropped_frac", routing.dropped_frac},
                            {"max_over_mean", routing.worst_max_over_mean},
                            {"zero_stage", zero},     {"mem_startup_peak_rss", startup_rss}};
      add_memory(rec, model, z3.get(), smaster.get(), buckets, zero, pc.pp > 1, zoptim ? 2 * zoptim->state_floats() : 2 * optim->state_floats(),
                 grad_shard.size(), stepper.activation_bytes(),
                 gather_staging.capacity() + size_t(z3 ? z3->staging_floats() : 0) +
                     size_t(smaster ? smaster->staging_floats() : 0));
      if (zero >= 2) {  // the transient part: at most two stages of gradients (and parameters) at once
        rec["mem_stage_max"] = buckets.max_stage_bytes();
        buckets.reset_peak();
      }
      if (z3) z3->reset_peaks();
      if (smaster) smaster->reset_peak();
      add_precision_metrics(rec, compute_weights, scaler);
      stepper.add_pipeline_metrics(rec);
      if (c.train.eval_every > 0 && ((step + 1) % c.train.eval_every == 0 || last)) {
        if (z3) z3->gather_all();
        if (smaster) smaster->gather_master(gather_staging);
        if (pc.pp > 1) gather_pipeline_params(stages, model, *grid.pp);  // eval runs the whole model per stage
        EvalResult ev = evaluate(c, model.p, c.train.eval_batches, dp, make_dispatcher, tp, etp);
        if (z3) z3->release_all();
        if (smaster) smaster->release_master();
        if (pc.pp > 1) release_foreign(model.table, foreign, model.params.data());
        rec["eval_loss"] = ev.loss;
      }
      metrics.write(rec);
      if (lead && !opt.quiet) {
        char extra[96];
        std::snprintf(extra, sizeof(extra), " | worst max/mean %.2f | drop %.1f%%", routing.worst_max_over_mean,
                      100.0 * routing.dropped_frac);
        progress.print(step + 1, loss, tps, mfu, extra);
      }
      result.tokens_per_s = tps;
      progress.restart_interval();
    }
    if ((c.checkpoint.every > 0 && (step + 1) % c.checkpoint.every == 0) || last)
      save_checkpoint(step + 1);
    if (exiting) break;
  }
  return result;
}

}  // namespace moe
