#include "src/cuda/device_zero_adamw.h"

#include <algorithm>

#include "kernels/cuda/adamw.cuh"
#include "kernels/cuda/cuda_check.h"
#include "src/comm/communicator.h"

namespace moe::gpu {

DeviceZeroAdamW::DeviceZeroAdamW(const ParamTable& table, const OptimConfig& cfg, const std::vector<bool>& frozen,
                                 const ZeroPartition& part, comm::Communicator* dp, comm::Communicator* edp,
                                 cudaStream_t stream)
    : table_(table), cfg_(cfg), part_(part), pieces_(zero_pieces(table, frozen, part)), dp_(dp), edp_(edp),
      stream_(stream), m_(part.shard_floats()), v_(part.shard_floats()),
      sq_(std::max<int64_t>(int64_t(pieces_.size()), 1)) {
  // Moments span the whole shard (padding and non-updated floats stay zero), as on the host.
  m_.zero(stream_);
  v_.zero(stream_);
  int64_t staging = 0;
  for (const ZeroRange& z : part.ranges()) {
    const comm::Communicator* g = part.bucket(z.bucket).expert ? edp_ : dp_;
    if (g) staging = std::max(staging, z.chunk * g->size());
  }
  staging_.resize(staging);
}

double DeviceZeroAdamW::owned_grad_sq_sum(const float* grads) const {
  for (size_t k = 0; k < pieces_.size(); ++k)
    cuda::sum_squares_async(sq_.get() + k, grads + pieces_[k].flat, pieces_[k].n, stream_);
  std::vector<double> part(pieces_.size());
  MOE_CUDA_CHECK(cudaMemcpyAsync(part.data(), sq_.get(), sizeof(double) * part.size(), cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  double s = 0;
  for (double x : part) s += x;
  return s;
}

void DeviceZeroAdamW::step(float* params, const float* grads, double lr, double clip_scale) {
  ++step_;
  for (const ZeroPiece& p : pieces_) {
    const ParamInfo& info = table_.params()[p.param];
    cuda::adamw_update_fused(params + p.flat, grads + p.flat, m_.get() + p.shard_off, v_.get() + p.shard_off, p.n,
                             float(lr), float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps),
                             info.weight_decay ? float(cfg_.weight_decay) : 0.0f, step_, float(clip_scale), nullptr,
                             stream_);
  }
}

// ZeroPartition::complete_gather's layout on device memory: each group rank's chunk of a bucket
// through the staging buffer (send and receive must not overlap), the tail from the last rank.
void DeviceZeroAdamW::gather(float* params) {
  for (const ZeroRange& z : part_.ranges()) {
    comm::Communicator* g = part_.bucket(z.bucket).expert ? edp_ : dp_;
    if (!g || g->size() == 1) continue;
    float* base = params + part_.bucket(z.bucket).begin;
    const int64_t size = g->size();
    if (z.chunk > 0) {
      g->allgather(params + z.begin, staging_.get(), z.chunk * int64_t(sizeof(float)));
      MOE_CUDA_CHECK(cudaMemcpyAsync(base, staging_.get(), sizeof(float) * size_t(z.chunk * size),
                                     cudaMemcpyDeviceToDevice, stream_));
    }
    if (z.tail > 0) g->broadcast(base + z.chunk * size, z.tail * int64_t(sizeof(float)), int(size - 1));
  }
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace moe::gpu
