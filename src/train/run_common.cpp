#include "src/train/run_common.h"

#include <cstdio>

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

}  // namespace moe
