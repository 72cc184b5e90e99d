// The attention sub-layer: h += wo(attention(rope(wq xn), rope(wk xn), wv xn)), xn = rmsnorm(h).
#pragma once
#include <vector>

#include "src/comm/communicator.h"
#include "src/model/dims.h"
#include "src/model/params.h"

namespace moe {

struct AttentionActs {
  std::vector<float> x_in;  // (N, D) sub-layer input, for the norm's backward
  std::vector<float> xn;    // (N, D)
  std::vector<float> rstd;  // (N)
  std::vector<float> q;     // (N, H*hd) after RoPE
  std::vector<float> k, v;  // (N, KV*hd), k after RoPE
  std::vector<float> att;   // (B, H, T, T)
  std::vector<float> y;     // (N, H*hd) attention output before wo
  std::vector<float> wo_partial;  // (N, D) this rank's wo product under tp > 1 (else unused)
  void resize(const Dims& d);
};

struct AttentionScratch {
  std::vector<float> dxn, dq, dk, dv, dy;
  void resize(const Dims& d);
};

// Everything before wo: a.x_in = x, then xn, rstd, q, k, v, att and y (no communication). Also
// how parallel.recompute rebuilds the sub-layer's activations in backward (src/model/recompute.h).
void attention_core_forward(AttentionActs& a, const float* x, const BlockParams& p, const Dims& d);
// x (N, D) is updated in place: x += attention branch.
// Tensor parallelism (tp non-null, d holds this rank's H and KV): p holds this rank's heads, q/k/v
// are column-parallel and wo row-parallel (src/parallel/tensor_parallel.h); x stays replicated.
void attention_layer_forward(float* x, AttentionActs& a, const BlockParams& p, const Dims& d,
                             comm::Communicator* tp = nullptr);
// dx (N, D) holds dL/d(output) on entry and dL/d(input) on return; parameter grads accumulate into g.
void attention_layer_backward(float* dx, const AttentionActs& a, const BlockParams& p, const BlockParams& g,
                              AttentionScratch& s, const Dims& d, comm::Communicator* tp = nullptr);

}  // namespace moe
