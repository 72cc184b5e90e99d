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
  if (micro && p.tp != 1)
    refuse("parallel.microbatches", "micro-batching does not combine with tensor parallelism yet; use 1 with tp > 1");
  if (micro && p.zero_stage != 0)
    refuse("parallel.microbatches", "micro-batching does not combine with ZeRO yet; use 1 with zero_stage > 0");
}

}  // namespace moe
