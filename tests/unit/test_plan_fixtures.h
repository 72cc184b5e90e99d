// Configs and hardware for the planner tests (tests/unit/test_plan*.cpp).
#pragma once
#include "src/plan/hardware.h"
#include "src/train/config.h"

namespace moe::test {

// A small MoE model whose shapes divide by 1, 2, 4 and 8 in every dimension.
inline Config plan_config() {
  Config c;
  c.source = "plan_test.yaml";
  c.model.vocab_size = 512;
  c.model.d_model = 256;
  c.model.n_layers = 8;
  c.model.n_heads = 8;
  c.model.n_kv_heads = 4;
  c.model.seq_len = 128;
  c.model.ffn_hidden = 512;
  c.model.moe_every = 2;
  c.moe.num_experts = 8;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 256;
  c.moe.num_shared_experts = 1;
  c.train.batch_size = 64;
  return c;
}

// An H100-like device with round numbers, so expected values are easy to derive.
inline plan::Hardware plan_hardware() {
  plan::Hardware h;
  h.name = "test_gpu";
  h.devices_per_node = 8;
  h.matmul_flops = 1e15;
  h.fp32_matmul_flops = 1e14;
  h.matmul_efficiency = 0.5;
  h.memory_bytes = 80.0 * 1073741824.0;
  h.memory_bandwidth = 3e12;
  h.intra_node = {400e9, 3e-6};
  h.inter_node = {50e9, 6e-6};
  return h;
}

}  // namespace moe::test
