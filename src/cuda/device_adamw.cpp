#include <cmath>
#include <utility>
#include <vector>

#include "kernels/cuda/adamw.cuh"
#include "src/cuda/device_model.h"

namespace moe::gpu {

DeviceAdamW::DeviceAdamW(const ParamTable& table, const OptimConfig& cfg, cudaStream_t stream, std::vector<bool> frozen)
    : table_(table), cfg_(cfg), stream_(stream), m_(table.total()), v_(table.total()),
      sq_(int64_t(table.params().size())), frozen_(std::move(frozen)) {
  m_.zero(stream_);
  v_.zero(stream_);
}

AdamW::SqSums DeviceAdamW::grad_sq_sums(const float* grads) const {
  // Per tensor, like AdamW::grad_sq_sums, so the sum runs in the same order over the same ranges;
  // the partial sums stay on the device until one copy back.
  const auto& ps = table_.params();
  for (size_t i = 0; i < ps.size(); ++i)
    if (updates(i)) cuda::sum_squares_async(sq_.get() + i, grads + ps[i].offset, ps[i].numel, stream_);
  std::vector<double> part(ps.size());
  MOE_CUDA_CHECK(cudaMemcpyAsync(part.data(), sq_.get(), sizeof(double) * ps.size(), cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  AdamW::SqSums s;
  for (size_t i = 0; i < ps.size(); ++i)
    if (updates(i)) (ps[i].shard.split() ? s.sharded : s.replicated) += part[i];
  return s;
}

double DeviceAdamW::grad_sq_sum(const float* grads) const {
  const AdamW::SqSums s = grad_sq_sums(grads);
  return s.replicated + s.sharded;
}

void DeviceAdamW::step(float* params, float* grads, double lr, double clip_scale, __nv_bfloat16* compute_copy) {
  ++step_;
  const auto& ps = table_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!updates(i)) continue;
    const ParamInfo& p = ps[i];
    // Clipping scales the gradient on the way in (the gradient buffer is left as it was).
    cuda::adamw_update_fused(params + p.offset, grads + p.offset, m_.get() + p.offset, v_.get() + p.offset, p.numel,
                             float(lr), float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps),
                             p.weight_decay ? float(cfg_.weight_decay) : 0.0f, step_, float(clip_scale),
                             compute_copy ? compute_copy + p.offset : nullptr, stream_);
  }
}

}  // namespace moe::gpu
