#include "src/cuda/device_train_step.h"

#include <string>

#include "kernels/cuda/cuda_check.h"
#include "src/train/micro_batches.h"

namespace moe::gpu {

DeviceStepOutput device_forward_backward(const Config& c, DeviceModel& dm, const int32_t* tokens, int64_t local_rows,
                                         double global_tokens, const SumReducer& reduce_sum) {
  const int64_t m = c.parallel.microbatches, T = c.model.seq_len;
  MOE_CUDA_REQUIRE(m >= 1 && local_rows % m == 0, "micro-batches must divide the local batch");
  const int64_t micro_rows = local_rows / m;
  DeviceStepOutput out;
  for (int64_t j = 0; j < m; ++j) {
    const DeviceLosses l = dm.forward(tokens + j * micro_rows * (T + 1), reduce_sum);
    dm.backward(global_tokens);
    out.losses.lm_sum += l.lm_sum;
    out.losses.aux += l.aux;
    out.losses.z += l.z;
    const std::vector<LayerLoadStats>& s = dm.load_stats();
    out.stats.resize(s.size());
    for (size_t k = 0; k < s.size(); ++k) add_micro_batch_stats(out.stats[k], s[k], j == 0, m);
    const std::vector<int64_t>& sent = dm.ep_sent_bytes();
    out.ep_sent_bytes.resize(sent.size());
    for (size_t r = 0; r < sent.size(); ++r) out.ep_sent_bytes[r] += sent[r];
  }
  // Each forward's bias follows from its own micro-batch's counts; the step's follows from the
  // step's counts (as on the CPU: TrainStep::update_balancing_bias), from the bias before the step.
  if (m > 1 && c.moe.bias_update_rate > 0) {
    const ParamTable& t = dm.table();
    size_t k = 0;
    for (int64_t i = 0; i < c.model.n_layers; ++i) {
      if (!c.model.is_moe_layer(i)) continue;
      const ParamInfo& p = t.params()[size_t(t.index_of("layers." + std::to_string(i) + ".moe.router.bias"))];
      std::vector<float> bias(size_t(p.numel));
      MOE_CUDA_CHECK(cudaMemcpy(bias.data(), dm.params() + p.offset, sizeof(float) * bias.size(), cudaMemcpyDeviceToHost));
      LayerLoadStats& st = out.stats[k++];
      st.bias = next_balancing_bias(bias.data(), st.tokens_per_expert, st.assignments, c.moe.bias_update_rate);
    }
  }
  return out;
}

}  // namespace moe::gpu
