// What one transformer block keeps between its forward and backward: the attention sub-layer's
// activations (src/model/attention.h) and the FFN sub-layer's, dense or MoE.
#pragma once
#include <cstddef>
#include <vector>

#include "moe/moe_layer.h"
#include "src/model/attention.h"
#include "src/model/mlp.h"

namespace moe {

struct FfnActs {
  std::vector<float> x_in;  // (N, D) sub-layer input
  std::vector<float> xn;    // (N, D)
  std::vector<float> rstd;  // (N)
  SwigluActs dense;
  MoeLayerState moe;
};

// Floats held for backward (Transformer::activation_bytes); backward scratch is not counted.
size_t attention_acts_floats(const AttentionActs& a);
size_t ffn_acts_floats(const FfnActs& f);

}  // namespace moe
