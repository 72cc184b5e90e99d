// Parameter counts of a config by kind, and what one rank of a layout holds. The same shapes as
// build_param_table (src/model/params.cpp); a unit test keeps the two equal.
#pragma once
#include <cstdint>

#include "src/train/config.h"

namespace moe::plan {

// Whole-model counts, in elements.
struct ParamCounts {
  int64_t embedding = 0;       // tok_embeddings V x D
  int64_t output = 0;          // output head V x D, plus the final norm
  int64_t attention = 0;       // wq, wk, wv, wo over all layers
  int64_t norms = 0;           // attention_norm + ffn_norm over all layers
  int64_t dense_ffn = 0;       // dense SwiGLU over the dense layers
  int64_t router = 0;          // router weight + balancing bias over the MoE layers
  int64_t experts = 0;         // routed experts over the MoE layers (all E)
  int64_t shared = 0;          // shared experts over the MoE layers
  int64_t expert_size = 0;     // one routed expert (3 x D x Fe)
  int64_t moe_layers = 0;
  int64_t total() const { return embedding + output + attention + norms + dense_ffn + router + experts + shared; }
  // Parameters one token uses (the published "active" figure): all but the unselected experts.
  int64_t active(int64_t top_k, int64_t num_experts) const {
    return total() - moe_layers * (num_experts - top_k) * expert_size;
  }
};

ParamCounts count_params(const Config& c);

// Parameters held by one rank of pipeline stage `stage` (layers split evenly over pp), before
// ZeRO: `dense` are split by tp (attention, dense FFN; embeddings, head, norms, router and shared
// experts are replicated) and replicated over dp; `expert` are split over ep x etp and replicated
// over the expert-data-parallel group (ZeRO's stages and buckets: src/plan/zero_shape.h).
struct StageParams {
  int64_t dense = 0;
  int64_t expert = 0;
  int64_t layers = 0;
  int64_t moe_layers = 0;
  int64_t dense_ffn_layers = 0;
};
StageParams stage_params(const Config& c, int64_t stage);

}  // namespace moe::plan
