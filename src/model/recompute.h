// Activation recomputation (parallel.recompute): which activations each block keeps between
// forward and backward, and the one workspace, shared by all blocks, that the others live in.
//   none       every block keeps everything (AttentionActs + FfnActs per layer);
//   block      a block keeps only its input (the residual stream entering it); its whole forward
//              runs again, into the workspace, right before its backward;
//   attention  the attention sub-layer keeps only its input; norm, q, k, v, scores and the
//              output before wo are rebuilt before its backward (no communication);
//   moe        a MoE layer keeps its router state, plan and dispatched tokens (expert_in); the
//              experts' hidden activations and outputs and the shared experts' hidden
//              activations are rebuilt from them (no second all-to-all under expert parallelism).
// Recomputation runs the same kernels on the same inputs, so results are bit-identical in fp32.
// Routing statistics and aux losses are those of the forward: a recompute never updates them.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/model/block_acts.h"
#include "src/model/dims.h"
#include "src/model/params.h"

namespace moe {

enum class Recompute { none, block, attention, moe };

// "none" | "block" | "attention" | "moe" (the config schema checks the value).
Recompute parse_recompute(const std::string& mode);

// Where one block's activations are, for its forward or its backward.
struct BlockActsRef {
  AttentionActs* attn;
  FfnActs* ffn;
};

// Re-runs block i's forward on the residual stream x into (attn, ffn): the owner's block body,
// with throw-away losses and the dispatcher told that this is a recompute pass.
using RerunBlockFn = std::function<void(float* x, AttentionActs& attn, FfnActs& ffn)>;

class Recomputer {
 public:
  Recomputer(Recompute mode, const Config& c, const Dims& d);
  Recompute mode() const { return mode_; }

  // Allocates the per-layer activations the mode keeps (the constructor's job for layer i).
  void size_layer(bool moe_layer, AttentionActs& attn, FfnActs& ffn) const;

  // Block i's forward on the residual stream x writes into the returned activations; end_forward
  // then keeps what the mode keeps in the layer's own (attn, ffn).
  BlockActsRef begin_forward(int64_t i, bool moe_layer, const float* x, AttentionActs& attn, FfnActs& ffn);
  void end_forward(bool moe_layer, AttentionActs& attn, FfnActs& ffn);
  // Rebuilds what block i's backward needs and says where it is; end_backward after the backward.
  BlockActsRef begin_backward(int64_t i, bool moe_layer, AttentionActs& attn, FfnActs& ffn, const BlockParams& p,
                              const RerunBlockFn& rerun);
  void end_backward(bool moe_layer, FfnActs& ffn);

  // Floats held by the workspace and the kept block inputs.
  size_t floats() const;

 private:
  void swap_expert_buffers(FfnActs& ffn);

  Recompute mode_;
  Dims d_;
  std::vector<std::vector<float>> block_in_;  // block: (N, D) per layer
  std::vector<float> x_;                      // block: the residual stream a re-run works on
  AttentionActs attn_;                        // block, attention
  FfnActs ffn_;                               // block: the whole FFN; moe: experts' and shared acts
                                              // and their backward scratch
};

}  // namespace moe
