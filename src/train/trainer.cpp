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
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/evaluate.h"
#include "src/train/flops.h"
#include "src/train/load_balance_hook.h"
#include "src/train/lr_schedule.h"
#include "src/train/metrics.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"
#include "src/train/routing_update.h"
#include "src/train/stop_signal.h"
#include "src/train/threads.h"

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
  if (p.tp != 1) refuse("parallel.tp", "tensor parallelism is not available in this build; use 1");
  if (p.pp != 1) refuse("parallel.pp", "pipeline parallelism is not available in this build; use 1");
  if (p.ep != 1 && c.train.eval_every > 0)
    refuse("train.eval_every", "periodic evaluation does not support expert parallelism yet; use 0 with ep > 1");
  if (p.etp != 1) refuse("parallel.etp", "expert tensor parallelism is not available in this build; use 1");
  if (p.zero_stage != 0) refuse("parallel.zero_stage", "ZeRO sharding is not available in this build; use 0");
  if (p.microbatches != 1) refuse("parallel.microbatches", "micro-batching comes with pipeline parallelism; use 1");
  if (p.recompute != "none") refuse("parallel.recompute", "recomputation is not available in this build; use none");
  if (c.train.precision != "fp32") refuse("train.precision", "only fp32 is available in this build");
  if (c.train.device != "cpu") refuse("train.device", "the CUDA backend is not available in this build; use cpu");
}

std::string checkpoint_root(const Config& c, const std::string& run_dir) {
  return c.checkpoint.dir.empty() ? (fs::path(run_dir) / "checkpoints").string() : c.checkpoint.dir;
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

  if (lead) {
    fs::create_directories(opt.run_dir);
    std::ofstream(fs::path(opt.run_dir) / "config.yaml") << dump_config(c);
  }
  world.barrier();

  ModelState model(c, ExpertShard{pc.ep, grid.coord.ep});
  init_params(model.table, model.params.data(), c.train.seed);
  AdamW optim(model.table, c.optim);

  data::LoaderOptions lo;
  lo.path = c.data.path;
  lo.seq_len = c.model.seq_len;
  lo.global_batch = c.train.batch_size;
  lo.dp_rank = dp.rank();
  lo.dp_size = dp.size();
  lo.seed = c.train.seed;
  lo.model_vocab_size = c.model.vocab_size;
  lo.prefetch = c.data.prefetch;
  data::ShardedLoader loader(lo);

  const std::string ckpt_root = checkpoint_root(c, opt.run_dir);
  int64_t start_step = 0;
  if (!opt.init_from.empty()) {
    load_weights(ckpt::resolve(opt.init_from), model);
  } else if (auto from = find_resume_checkpoint(c, ckpt_root)) {
    start_step = load_training_state(*from, model, optim, loader, grid);
    if (lead) std::printf("resumed from %s at step %lld\n", from->c_str(), (long long)start_step);
  }

  const int64_t local_rows = c.train.batch_size / dp.size();
  // Capacity is decided over the dp group (the whole micro-batch); tokens travel over ep.
  Transformer net(c, local_rows, [&](int64_t) -> std::unique_ptr<TokenDispatcher> {
    if (pc.ep > 1) return std::make_unique<EpDispatcher>(ep, &dp, c.moe.num_experts);
    return std::make_unique<LocalDispatcher>(&dp);
  });
  GradBuckets buckets(model.table, c.model.n_layers, dp, *grid.edp);
  MetricsWriter metrics(lead ? (fs::path(opt.run_dir) / "metrics.jsonl").string() : "");
  const double global_tokens = double(c.train.batch_size * c.model.seq_len);
  const double flops_per_token = train_flops_per_token(c);
  const double peak = measure_sgemm_peak() * world.size();
  const SumReducer reduce = [&](std::vector<double>& v) { dp.allreduce_sum(v.data(), int64_t(v.size())); };
  std::vector<int32_t> tokens;
  LoadBalanceHook load_balance(c, opt.run_dir, lead, start_step);

  TrainResult result;
  result.steps_done = start_step;
  auto interval_start = Clock::now();
  auto run_start = interval_start;
  int64_t interval_steps = 0;
  for (int64_t step = start_step; step < c.train.steps; ++step) {
    stall_for_test(world.rank(), step + 1);
    const auto step_start = Clock::now();
    loader.next(tokens);
    std::fill(model.grads.begin(), model.grads.end(), 0.0f);
    net.set_routing_step(step, int64_t(dp.rank()) * local_rows * c.model.seq_len, /*training=*/true);
    StepLosses sl = net.forward(tokens.data(), model.p, reduce);
    net.backward(model.p, model.g, global_tokens,
                 [&](int64_t stage) { buckets.on_stage_ready(stage, model.grads.data()); });
    buckets.finish(model.grads.data());
    double lm_sum = sl.lm_sum;
    dp.allreduce_sum(&lm_sum, 1);
    const double lm = lm_sum / global_tokens, loss = lm + sl.aux + sl.z;
    if (!std::isfinite(loss))
      throw Error(kExitOther, "non-finite loss at step " + std::to_string(step + 1) +
                                  "; the last good checkpoint is kept. Lower optim.lr or check the data.");
    // Replicated tensors count once; expert slices differ over the ep group.
    AdamW::SqSums sq = optim.grad_sq_sums(model.grads.data());
    ep.allreduce_sum(&sq.sharded, 1);
    const double gnorm = std::sqrt(sq.replicated + sq.sharded);
    const double lr = lr_at(step, c.train.steps, c.optim.warmup_steps, c.optim.lr, c.optim.min_lr);
    const auto optim_start = Clock::now();
    optim.step(model.params.data(), model.grads.data(), lr, clip_scale(gnorm, c.optim.grad_clip));
    update_balancing_bias(c, net, model);
    if (load_balance.wants(step + 1)) {
      PhaseTimes pt;
      pt.optimizer = std::chrono::duration<double>(Clock::now() - optim_start).count();
      pt.step = std::chrono::duration<double>(Clock::now() - step_start).count();
      load_balance.record(step + 1, net, model, pt);
    }
    result.steps_done = step + 1;
    result.last_loss = loss;
    ++interval_steps;

    // A signal may reach the ranks at different steps: agree on it, so all stop after this one.
    double signalled = stop_requested() ? 1.0 : 0.0;
    world.allreduce_max(&signalled, 1);
    const bool exiting = (opt.exit_after > 0 && step + 1 - start_step == opt.exit_after) || signalled > 0;
    if (signalled > 0 && lead)
      std::printf("stop requested (SIGTERM/SIGINT): writing a checkpoint at step %lld, then exiting\n",
                  (long long)(step + 1));
    const bool last = step + 1 == c.train.steps || exiting;
    if ((step + 1) % c.train.log_every == 0 || last) {
      const double secs = std::chrono::duration<double>(Clock::now() - interval_start).count();
      const double tps = double(interval_steps) * global_tokens / secs;
      const double mfu = tps * flops_per_token / peak;
      StepRouting routing = summarize_routing(net);
      nlohmann::json rec = {{"step", step + 1},       {"loss", loss},          {"lm_loss", lm},
                            {"aux_loss", sl.aux},     {"z_loss", sl.z},        {"lr", lr},
                            {"grad_norm", gnorm},     {"tokens_per_s", tps},   {"mfu", mfu},
                            {"dropped_frac", routing.dropped_frac},
                            {"max_over_mean", routing.worst_max_over_mean},
                            {"mem_bytes", int64_t(3 * model.params.size() * sizeof(float)) + net.activation_bytes() +
                                              int64_t(model.grads.size() * sizeof(float))}};
      if (c.train.eval_every > 0 && ((step + 1) % c.train.eval_every == 0 || last)) {
        EvalResult ev = evaluate(c, model.p, c.train.eval_batches, dp);
        rec["eval_loss"] = ev.loss;
      }
      metrics.write(rec);
      if (lead && !opt.quiet) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
        const double eta = elapsed / double(step + 1 - start_step) * double(c.train.steps - step - 1);
        char extra[96];
        std::snprintf(extra, sizeof(extra), " | worst max/mean %.2f | drop %.1f%%", routing.worst_max_over_mean,
                      100.0 * routing.dropped_frac);
        std::printf("%s\n", progress_line(step + 1, c.train.steps, loss, tps, mfu, eta, extra).c_str());
        std::fflush(stdout);
      }
      result.tokens_per_s = tps;
      interval_start = Clock::now();
      interval_steps = 0;
    }
    if ((c.checkpoint.every > 0 && (step + 1) % c.checkpoint.every == 0) || last)
      save_training_state(c, ckpt_root, step + 1, model, optim, loader, grid);
    if (exiting) break;
  }
  return result;
}

}  // namespace moe
