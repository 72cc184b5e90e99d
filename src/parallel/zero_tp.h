// ZeRO combined with tensor parallelism (docs/distributed.md, "ZeRO sharding"). Each tp rank
// shards its own buffers (its tp slices, the replicated tensors, its expert slices) over its dp
// and edp groups exactly as without tp; only the gradient norm and the routed-expert gradient
// scale need to know the tp layout.
#pragma once
#include "src/comm/communicator.h"
#include "src/model/params.h"
#include "src/parallel/zero.h"
#include "src/parallel/zero_optimizer.h"

namespace moe {

// Squared global gradient norm from this rank's owned, updated gradients (grads: the full buffer,
// or the shard under stage 2). Dense tensors replicated over tp are owned once per dp group and
// equal on every tp rank: summed over dp. Everything else (tp slices; expert slices, owned once
// per edp group, and the edp groups partition the dp x tp ranks) is summed over dp and tp.
// Collective over dp, and over tp when it is not null (null: one sum over dp, as without tp).
double zero_grad_sq_norm(const ZeroAdamW& optim, const ParamTable& table, const float* grads, bool sharded,
                         comm::Communicator& dp, comm::Communicator* tp);

// Stage 2 twin of scale_expert_grads: multiplies the routed-expert part of the gradient shard.
void scale_expert_shard(const ZeroPartition& part, float* shard, float scale);

}  // namespace moe
