#include "src/cuda/device_model.h"

#include "kernels/cuda/cuda_check.h"
#include "src/cuda/device_model_impl.h"

namespace moe::gpu {

std::string device_step_unsupported(const Config& c) {
  const ParallelConfig& p = c.parallel;
  if (p.tp != 1 || p.pp != 1 || p.etp != 1)
    return "train.device cuda runs data and expert parallelism only (parallel.tp, pp and etp must be 1)";
  if (p.zero_stage > 1)
    return "train.device cuda shards optimizer states only (parallel.zero_stage 0 or 1; 2 and 3 are CPU-only)";
  if (p.recompute != "none" && p.recompute != "block")
    return "train.device cuda recomputes whole blocks only (parallel.recompute none or block)";
  if (c.train.precision != "fp32" && c.train.precision != "bf16")
    return "train.device cuda supports train.precision fp32 and bf16 (fp16 loss scaling is CPU-only)";
  const MoeConfig& m = c.moe;
  if (c.model.moe_every != 0) {
    if (m.router != "softmax" || m.score_order != "softmax_then_topk" || m.num_groups > 1)
      return "train.device cuda routes with moe.router softmax, score_order softmax_then_topk and no group limit";
    if (m.router_jitter > 0) return "train.device cuda has no router jitter (moe.router_jitter must be 0)";
    if (m.capacity_factor > 0) return "train.device cuda dispatches dropless (moe.capacity_factor must be 0)";
    if (m.num_shared_experts > 0) return "train.device cuda has no shared experts (moe.num_shared_experts must be 0)";
    if (m.aux_loss_type == "seq") return "train.device cuda supports moe.aux_loss_type switch or none";
    if (m.top_k > 32) return "train.device cuda routes at most 32 experts per token (moe.top_k)";
  }
  return "";
}

DeviceModel::DeviceModel(const Config& c, int64_t batch, cudaStream_t stream, comm::Communicator* ep)
    : impl_(make_device_impl(c, batch, stream, ep)) {}
DeviceModel::~DeviceModel() = default;

const ParamTable& DeviceModel::table() const { return impl_->table; }
const std::vector<int64_t>& DeviceModel::ep_sent_bytes() const { return impl_->ep_sent; }
float* DeviceModel::params() { return impl_->params.get(); }
float* DeviceModel::grads() { return impl_->grads.get(); }

void DeviceModel::upload_params(const float* host) {
  MOE_CUDA_CHECK(cudaMemcpyAsync(impl_->params.get(), host, sizeof(float) * impl_->params.size(),
                                 cudaMemcpyHostToDevice, impl_->s));
  impl_->refresh_compute_copy();
  MOE_CUDA_CHECK(cudaStreamSynchronize(impl_->s));
}

void DeviceModel::download_params(float* host) const {
  MOE_CUDA_CHECK(cudaMemcpyAsync(host, impl_->params.get(), sizeof(float) * impl_->params.size(),
                                 cudaMemcpyDeviceToHost, impl_->s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(impl_->s));
}

void DeviceModel::download_grads(float* host) const {
  MOE_CUDA_CHECK(cudaMemcpyAsync(host, impl_->grads.get(), sizeof(float) * impl_->grads.size(),
                                 cudaMemcpyDeviceToHost, impl_->s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(impl_->s));
}

void DeviceModel::refresh_compute_copy() { impl_->refresh_compute_copy(); }
__nv_bfloat16* DeviceModel::compute_copy() { return impl_->compute_copy(); }
void DeviceModel::zero_grads() { impl_->grads.zero(impl_->s); }

DeviceLosses DeviceModel::forward(const int32_t* tokens, const SumReducer& reduce_sum) {
  return impl_->forward(tokens, reduce_sum);
}
void DeviceModel::backward(double global_tokens) { impl_->backward(global_tokens); }

const std::vector<LayerLoadStats>& DeviceModel::load_stats() const { return impl_->stats; }

std::vector<float> DeviceModel::token_losses() const {
  std::vector<float> out(size_t(impl_->losses.size()));
  MOE_CUDA_CHECK(cudaMemcpyAsync(out.data(), impl_->losses.get(), sizeof(float) * out.size(), cudaMemcpyDeviceToHost,
                                 impl_->s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(impl_->s));
  return out;
}

int64_t DeviceModel::activation_bytes() const { return impl_->activation_bytes(); }
DeviceModel::ExpertRowUse DeviceModel::expert_row_use() const { return impl_->row_use; }
std::string DeviceModel::attention_kernel() const { return impl_->attention_kernel; }

void DeviceModel::enable_phase_times(bool on) { impl_->marks.enable(on); }
std::vector<std::pair<std::string, double>> DeviceModel::phase_times() { return impl_->marks.totals(); }

}  // namespace moe::gpu
