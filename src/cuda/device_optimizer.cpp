#include "src/cuda/device_optimizer.h"

#include <cmath>

#include "kernels/cuda/cuda_check.h"
#include "src/comm/communicator.h"

namespace moe::gpu {

DeviceOptimizer::DeviceOptimizer(const Config& c, const ParamTable& table, const std::vector<bool>& frozen,
                                 const DeviceGroups& g, cudaStream_t stream)
    : table_(table), stream_(stream), groups_(g), sync_(table, g.dp, g.edp, *g.ep_host) {
  if (c.parallel.zero_stage == 0) {
    full_ = std::make_unique<DeviceAdamW>(table, c.optim, stream, frozen);
    return;
  }
  // The CPU trainer's buckets, hence its partition: a rank owns the same ranges on either device.
  buckets_ = std::make_unique<GradBuckets>(table, c.model.n_layers, *g.dp_host, *g.edp_host);
  part_ = std::make_unique<ZeroPartition>(buckets_->buckets(), *g.dp_host, *g.edp_host);
  host_ = std::make_unique<ZeroAdamW>(table, c.optim, frozen, *part_);
  zero_ = std::make_unique<DeviceZeroAdamW>(table, c.optim, frozen, *part_, g.dp, g.edp, stream);
}

void DeviceOptimizer::reduce(float* grads) const { sync_.reduce(grads); }

double DeviceOptimizer::norm(const float* grads) const {
  if (full_) return sync_.norm(*full_, grads);
  // Owned ranges partition the dense tensors over dp and each expert slice over edp: summed over
  // dp (every rank of the layout), each element counts once.
  double s = zero_->owned_grad_sq_sum(grads);
  groups_.dp_host->allreduce_sum(&s, 1);
  return std::sqrt(s);
}

void DeviceOptimizer::step(DeviceModel& dm, double lr, double clip_scale) {
  if (full_) {
    full_->step(dm.params(), dm.grads(), lr, clip_scale, dm.compute_copy());
    return;
  }
  zero_->step(dm.params(), dm.grads(), lr, clip_scale);
  zero_->gather(dm.params());
  dm.refresh_compute_copy();  // the other ranks' ranges changed too
}

void DeviceOptimizer::load(AdamW& full) {
  if (full_) {
    for (size_t i = 0; i < table_.params().size(); ++i) {
      if (!full.updates(i)) continue;
      const ParamInfo& p = table_.params()[i];
      const size_t bytes = sizeof(float) * size_t(p.numel);
      MOE_CUDA_CHECK(cudaMemcpyAsync(full_->m() + p.offset, full.m_of(i), bytes, cudaMemcpyHostToDevice, stream_));
      MOE_CUDA_CHECK(cudaMemcpyAsync(full_->v() + p.offset, full.v_of(i), bytes, cudaMemcpyHostToDevice, stream_));
    }
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    full_->set_steps_done(full.steps_done());
    return;
  }
  host_->from_full(full);
  const size_t bytes = sizeof(float) * size_t(host_->state_floats());
  MOE_CUDA_CHECK(cudaMemcpyAsync(zero_->m(), host_->m_data(), bytes, cudaMemcpyHostToDevice, stream_));
  MOE_CUDA_CHECK(cudaMemcpyAsync(zero_->v(), host_->v_data(), bytes, cudaMemcpyHostToDevice, stream_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  zero_->set_steps_done(full.steps_done());
}

void DeviceOptimizer::save(AdamW& full) {
  if (full_) {
    for (size_t i = 0; i < table_.params().size(); ++i) {
      if (!full.updates(i)) continue;
      const ParamInfo& p = table_.params()[i];
      const size_t bytes = sizeof(float) * size_t(p.numel);
      MOE_CUDA_CHECK(cudaMemcpyAsync(full.m_of(i), full_->m() + p.offset, bytes, cudaMemcpyDeviceToHost, stream_));
      MOE_CUDA_CHECK(cudaMemcpyAsync(full.v_of(i), full_->v() + p.offset, bytes, cudaMemcpyDeviceToHost, stream_));
    }
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    full.set_steps_done(full_->steps_done());
    return;
  }
  const size_t bytes = sizeof(float) * size_t(host_->state_floats());
  MOE_CUDA_CHECK(cudaMemcpyAsync(host_->m_data(), zero_->m(), bytes, cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaMemcpyAsync(host_->v_data(), zero_->v(), bytes, cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  host_->set_steps_done(zero_->steps_done());
  std::vector<float> staging(size_t(part_->max_gather_floats()));
  host_->to_full(full, staging);
}

int64_t DeviceOptimizer::state_floats() const { return full_ ? table_.total() : zero_->state_floats(); }

}  // namespace moe::gpu
