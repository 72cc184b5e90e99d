// Small configs and randomised parameters for model-level tests.
#pragma once
#include <cmath>

#include "src/model/params.h"
#include "src/train/config.h"
#include "src/train/model_state.h"
#include "tests/unit/gradcheck.h"

namespace moe::test {

// Two layers: layer 0 dense, layer 1 MoE (moe_every 2), GQA with 2 query heads per kv head.
inline Config tiny_model_config(int64_t top_k, int64_t shared = 1) {
  Config c;
  c.model.vocab_size = 11;
  c.model.d_model = 8;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.seq_len = 5;
  c.model.ffn_hidden = 12;
  c.model.moe_every = 2;
  c.moe.num_experts = 4;
  c.moe.top_k = top_k;
  c.moe.expert_hidden = 6;
  c.moe.num_shared_experts = shared;
  c.moe.aux_loss_coeff = 0.1;  // large enough that its gradient is visible in the check
  c.moe.z_loss_coeff = 0.05;
  return c;
}

// Weights of a larger scale than the real init, so gradients stand well above float noise.
inline void randomize(ModelState& m, uint64_t seed) {
  for (const auto& p : m.table.params()) {
    auto r = random_floats(p.numel, seed + uint64_t(p.offset), -1.0f, 1.0f);
    float* x = m.params.data() + p.offset;
    for (int64_t i = 0; i < p.numel; ++i) {
      if (p.init == InitKind::ones) x[i] = 1.0f + 0.2f * r[size_t(i)];
      else if (p.init == InitKind::zeros) x[i] = 0.0f;
      else x[i] = 0.4f * r[size_t(i)];
    }
  }
}

}  // namespace moe::test
