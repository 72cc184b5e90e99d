// What pipeline parallelism and micro-batching do not combine with yet (docs/distributed.md).
#include "src/train/train_step.h"

namespace moe {

void require_pipeline_supported(const Config& c,
                                const std::function<void(const std::string&, const std::string&)>& refuse) {
  const auto& p = c.parallel;
  const bool pp = p.pp > 1, micro = p.microbatches > 1;
  if (pp && p.tp != 1)
    refuse("parallel.pp", "pipeline parallelism does not combine with tensor parallelism yet; use tp 1 with pp > 1");
  if (pp && p.zero_stage != 0)
    refuse("parallel.zero_stage", "ZeRO does not combine with pipeline parallelism yet; use 0 with pp > 1");
  if (pp && c.train.eval_every > 0)
    refuse("train.eval_every", "periodic evaluation does not support pipeline parallelism yet; use 0 with pp > 1 "
                               "and run `moe eval` on a checkpoint");
  if (micro && p.tp != 1)
    refuse("parallel.microbatches", "micro-batching does not combine with tensor parallelism yet; use 1 with tp > 1");
  if (micro && p.zero_stage != 0)
    refuse("parallel.microbatches", "micro-batching does not combine with ZeRO yet; use 1 with zero_stage > 0");
  // The balancing bias is updated from one forward's statistics.
  if ((pp || micro) && c.moe.bias_update_rate > 0)
    refuse("moe.bias_update_rate", "the balancing bias update does not support parallel.pp > 1 or "
                                   "parallel.microbatches > 1 yet; use 0 there");
}

}  // namespace moe
