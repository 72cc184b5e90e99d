#include "src/train/run_common.h"

#include <cstdio>

#include "src/train/metrics.h"
#include "src/train/stop_signal.h"

namespace moe {

data::LoaderOptions run_loader_options(const Config& c, const comm::Communicator& dp) {
  data::LoaderOptions lo;
  lo.path = c.data.path;
  lo.seq_len = c.model.seq_len;
  lo.global_batch = c.train.batch_size;
  lo.dp_rank = dp.rank();
  lo.dp_size = dp.size();
  lo.microbatches = c.parallel.microbatches;
  lo.seed = c.train.seed;
  lo.model_vocab_size = c.model.vocab_size;
  lo.prefetch = c.data.prefetch;
  return lo;
}

bool stop_after_step(comm::Communicator& world, int64_t exit_after, int64_t steps_this_run, int64_t step_done,
                     bool lead) {
  double signalled = stop_requested() ? 1.0 : 0.0;
  world.allreduce_max(&signalled, 1);
  if (signalled > 0 && lead)
    std::printf("stop requested (SIGTERM/SIGINT): writing a checkpoint at step %lld, then exiting\n",
                (long long)step_done);
  return (exit_after > 0 && steps_this_run == exit_after) || signalled > 0;
}

double RunProgress::tokens_per_s(double tokens_per_step) const {
  const double secs = std::chrono::duration<double>(Clock::now() - interval_start_).count();
  return double(interval_steps_) * tokens_per_step / secs;
}

void RunProgress::restart_interval() {
  interval_start_ = Clock::now();
  interval_steps_ = 0;
}

void RunProgress::print(int64_t step_done, double loss, double tokens_per_s, double mfu,
                        const std::string& extra) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - run_start_).count();
  const double eta = elapsed / double(step_done - start_step_) * double(total_ - step_done);
  std::printf("%s\n", progress_line(step_done, total_, loss, tokens_per_s, mfu, eta, extra.c_str()).c_str());
  std::fflush(stdout);
}

}  // namespace moe
