#include "src/cuda/device_grad_sync.h"

#include <cmath>

#include "src/comm/communicator.h"

namespace moe::gpu {

DeviceGradSync::DeviceGradSync(const ParamTable& table, comm::Communicator* dp, comm::Communicator* edp,
                               comm::Communicator& ep)
    : dp_(dp), edp_(edp), ep_(ep) {
  for (const ParamInfo& p : table.params()) {
    if (!ranges_.empty() && ranges_.back().expert == p.shard.expert) ranges_.back().end = p.offset + p.numel;
    else ranges_.push_back({p.offset, p.offset + p.numel, p.shard.expert});
  }
}

void DeviceGradSync::reduce(float* grads) const {
  for (const Range& r : ranges_)
    if (comm::Communicator* group = r.expert ? edp_ : dp_) group->allreduce_sum(grads + r.begin, r.end - r.begin);
}

double DeviceGradSync::norm(const DeviceAdamW& optim, const float* grads) const {
  AdamW::SqSums sq = optim.grad_sq_sums(grads);
  ep_.allreduce_sum(&sq.sharded, 1);
  return std::sqrt(sq.replicated + sq.sharded);
}

}  // namespace moe::gpu
