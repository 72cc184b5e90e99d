// Shared by the device-step tests (test_gpu_train_step.cpp, test_gpu_parallel_step.cpp): a small
// model, its tokens, one device step and a per-tensor error.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "src/cuda/device_model.h"
#include "src/model/params.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {

// Two layers (dense then MoE) so both FFN kinds, the router losses and GQA are exercised.
inline Config small_config(const std::string& precision) {
  Config c;
  c.model.vocab_size = 67;
  c.model.d_model = 32;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.seq_len = 12;
  c.model.ffn_hidden = 40;
  c.model.moe_every = 2;  // layer 1 is MoE
  c.moe.num_experts = 5;  // odd: uneven expert sizes, possibly an empty expert
  c.moe.top_k = 2;
  c.moe.expert_hidden = 24;
  c.moe.aux_loss_coeff = 0.01;
  c.moe.z_loss_coeff = 0.001;
  c.train.precision = precision;
  return c;
}

// The model's initial weights (init_params with `seed`).
inline std::vector<float> initial_params(const ParamTable& table, uint64_t seed) {
  std::vector<float> params(size_t(table.total()));
  init_params(table, params.data(), seed);
  return params;
}

inline std::vector<int32_t> tokens_for(const Config& c, int64_t B, uint64_t seed) {
  return random_ints(B * (c.model.seq_len + 1), seed, 0, int32_t(c.model.vocab_size));
}

struct GpuStep {
  gpu::DeviceLosses losses;
  std::vector<float> grads;
  std::vector<LayerLoadStats> stats;
  std::vector<float> token_losses;
  gpu::DeviceModel::ExpertRowUse row_use;
  int64_t activation_bytes = 0;
};

inline GpuStep gpu_step(const Config& c, int64_t B, const std::vector<float>& params, const std::vector<int32_t>& tokens) {
  gpu::DeviceModel dm(c, B, stream());
  dm.upload_params(params.data());
  dm.zero_grads();
  GpuStep out;
  out.losses = dm.forward(tokens.data());
  dm.backward(double(B * c.model.seq_len));
  out.grads.resize(params.size());
  dm.download_grads(out.grads.data());
  out.stats = dm.load_stats();
  out.token_losses = dm.token_losses();
  out.row_use = dm.expert_row_use();
  out.activation_bytes = dm.activation_bytes();
  return out;
}

// Worst per-tensor error of a against b, relative to the tensor's largest |b|.
inline double worst_tensor_err(const ParamTable& t, const std::vector<float>& a, const std::vector<float>& b,
                        std::string* where) {
  double worst = 0;
  for (const ParamInfo& p : t.params()) {
    double mx = 0, diff = 0;
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
      mx = std::max(mx, double(std::fabs(b[size_t(i)])));
      diff = std::max(diff, double(std::fabs(a[size_t(i)] - b[size_t(i)])));
    }
    const double e = mx > 0 ? diff / mx : diff;
    if (e > worst) {
      worst = e;
      *where = p.name;
    }
  }
  return worst;
}

}  // namespace moe::gpu_test
