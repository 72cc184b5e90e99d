// Parameters live in one flat fp32 buffer described by a table of named views (logical names of
// DESIGN.md). Gradients and optimizer state reuse the same table, so bucketing, ZeRO sharding and
// checkpoints all work on offsets. The per-layer structs below are views into the buffer.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/train/config.h"

namespace moe {

enum class InitKind { normal, ones, zeros };

// How a parameter is laid out over ranks. Replicated tensors (split_dim < 0) are identical on
// every rank of their reduction group; a split tensor holds the slice
// [offset, offset + shape[split_dim]) of global_shape along split_dim.
struct ShardSpec {
  int split_dim = -1;                 // -1: replicated
  std::string group;                  // group the split runs over ("ep"); "" when replicated
  int64_t offset = 0;                 // this rank's first index along split_dim
  std::vector<int64_t> global_shape;  // the logical tensor
  bool expert = false;                // routed-expert weights: gradients reduce over edp, not dp
  // Expert tensor parallelism: routed-expert tensors are also split over the etp group along
  // their hidden-unit dim (1 for w1/w3, 2 for w2); this rank holds [etp_offset, + shape[etp_dim]).
  int etp_dim = -1;                   // -1: not split over etp
  int64_t etp_offset = 0;
  bool split() const { return split_dim >= 0 || etp_dim >= 0; }
};

struct ParamInfo {
  std::string name;            // logical name, e.g. layers.0.attention.wq.weight
  std::vector<int64_t> shape;  // this rank's shape (the global shape unless sharded)
  int64_t offset = 0;          // into the flat buffer
  int64_t numel = 0;
  InitKind init = InitKind::normal;
  bool weight_decay = true;    // norms are not decayed
  bool trainable = true;       // the balancing bias is updated by its own rule, not by AdamW
  ShardSpec shard;             // global shape and slice (global_shape == shape when replicated)
};

// Expert parallelism: the E routed experts of each MoE layer are divided over `size` ranks;
// rank `rank` holds experts [rank * E/size, (rank+1) * E/size). Expert tensor parallelism: each
// expert's hidden units are divided over `etp` ranks; rank `etp_rank` holds part etp_rank.
struct ExpertShard {
  int64_t size = 1, rank = 0;
  int64_t etp = 1, etp_rank = 0;
};

// Tensor parallelism (Megatron): attention heads and dense FFN hidden units are divided over the
// `size` ranks of the tp group; rank `rank` holds part `rank` (src/parallel/tensor_parallel.h).
struct TensorShard {
  int64_t size = 1, rank = 0;
};

class ParamTable {
 public:
  int add(const std::string& name, std::vector<int64_t> shape, InitKind init, bool weight_decay = true,
          bool trainable = true);
  // A routed-expert tensor of `global_shape`: experts (dim 0) split over ep, hidden units
  // (hidden_dim) over etp, as es says.
  int add_expert(const std::string& name, std::vector<int64_t> global_shape, int hidden_dim, InitKind init,
                 const ExpertShard& es);
  // A tensor of `global_shape` split along `split_dim` over the tp group; this rank holds part ts.rank.
  int add_tp_split(const std::string& name, std::vector<int64_t> global_shape, int split_dim, InitKind init,
                   const TensorShard& ts);
  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t total() const { return total_; }
  int index_of(const std::string& name) const;  // -1 when absent

 private:
  std::vector<ParamInfo> params_;
  int64_t total_ = 0;
};

// Views of one block's parameters (null where the block has no such parameter).
struct BlockParams {
  float* attention_norm;  // (D)
  float* wq;              // (H*hd, D)
  float* wk;              // (KV*hd, D)
  float* wv;              // (KV*hd, D)
  float* wo;              // (D, H*hd)
  float* ffn_norm;        // (D)
  float* w1;              // (F, D)   dense SwiGLU
  float* w3;              // (F, D)
  float* w2;              // (D, F)
  float* router;          // (E, D)
  float* router_bias;     // (E)      balancing bias, selection only
  float* experts_w1;      // (E_local, Fe, D)  this rank's experts
  float* experts_w3;      // (E_local, Fe, D)
  float* experts_w2;      // (E_local, D, Fe)
  float* shared_w1;       // (S*Fe, D) shared experts fused into one SwiGLU
  float* shared_w3;       // (S*Fe, D)
  float* shared_w2;       // (D, S*Fe)
};

struct ModelParams {
  float* tok_embeddings;  // (V, D)
  std::vector<BlockParams> blocks;
  float* norm;            // (D)
  float* output;          // (V, D)
};

// The table of the whole model, in a fixed order (independent of the parallel layout); expert
// weights hold only this rank's experts under expert parallelism, and attention / dense FFN
// weights only this rank's heads / hidden units under tensor parallelism.
ParamTable build_param_table(const Config& c, const ExpertShard& es = {}, const TensorShard& ts = {});
// Per dimension, the index in the global tensor of this rank's first element of p.
std::vector<int64_t> shard_start(const ParamInfo& p);
// Index in the unsplit (global) tensor of element i of this rank's slice of p.
int64_t global_index(const ParamInfo& p, int64_t i);
// Points the views into `base` (a buffer of table.total() floats: params, grads or state).
ModelParams bind_params(const Config& c, const ParamTable& table, float* base);
// Deterministic init from (seed, name): N(0, 0.02) weights, ones for norms, zeros for the bias.
// Element i of a slice draws the number of its index in the global tensor (layout invariant).
void init_params(const ParamTable& table, float* data, uint64_t seed);
// The same values, written only into the float ranges [begin, end) of the flat buffer (ZeRO: a
// rank's owned ranges; the rest of `data` is not touched).
void init_params_ranges(const ParamTable& table, float* data, uint64_t seed,
                        const std::vector<std::pair<int64_t, int64_t>>& ranges);

}  // namespace moe
