#include "src/train/micro_batches.h"

namespace moe {

Config micro_batch_config(const Config& c) {
  Config s = c;
  s.moe.aux_loss_coeff /= double(c.parallel.microbatches);
  s.moe.z_loss_coeff /= double(c.parallel.microbatches);
  return s;
}

void add_micro_batch_stats(LayerLoadStats& total, const LayerLoadStats& s, bool first, int64_t m) {
  if (first) {
    total = s;
    total.entropy = s.entropy / double(m);
    return;
  }
  for (size_t e = 0; e < total.tokens_per_expert.size(); ++e) total.tokens_per_expert[e] += s.tokens_per_expert[e];
  total.dropped += s.dropped;
  total.assignments += s.assignments;
  total.entropy += s.entropy / double(m);
  total.aux_loss += s.aux_loss;
  total.z_loss += s.z_loss;
  total.bias = s.bias;
}

}  // namespace moe
