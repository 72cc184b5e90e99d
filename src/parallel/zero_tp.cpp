#include "src/parallel/zero_tp.h"

#include "kernels/ops.h"

namespace moe {

double zero_grad_sq_norm(const ZeroAdamW& optim, const ParamTable& table, const float* grads, bool sharded,
                         comm::Communicator& dp, comm::Communicator* tp) {
  if (!tp) {  // the single-group sum of the tp = 1 trainer
    double s = optim.grad_sq_sum(grads, sharded);
    dp.allreduce_sum(&s, 1);
    return s;
  }
  const auto& ps = table.params();
  auto same_on_tp = [&](size_t i) { return !ps[i].shard.expert && ps[i].shard.group != "tp"; };
  double sums[2] = {optim.grad_sq_sum(grads, sharded, same_on_tp),
                    optim.grad_sq_sum(grads, sharded, [&](size_t i) { return !same_on_tp(i); })};
  dp.allreduce_sum(sums, 2);
  tp->allreduce_sum(&sums[1], 1);
  return sums[0] + sums[1];
}

void scale_expert_shard(const ZeroPartition& part, float* shard, float scale) {
  for (const ZeroRange& z : part.ranges())
    if (part.bucket(z.bucket).expert) ops::scale_inplace(shard + z.shard_off, scale, z.owned);
}

}  // namespace moe
