// What ZeRO stages 1-3 keep per rank beyond the owned shard, from the rank's own tensors (in the
// order of build_param_table) cut into the trainer's gradient buckets (src/parallel/grad_buckets.h):
// stage 2/3 hold the full gradients of at most two consecutive backward stages; stage 3 the
// gathered parameters of the stage in use (the next one is prefetched into a staging buffer and
// placed only when it is needed); the all-gather staging holds one bucket (stage 3: a bucket and
// a whole prefetched stage, src/parallel/zero3.h).
#pragma once
#include <cstdint>
#include <vector>

#include "src/train/config.h"

namespace moe::plan {

struct ZeroShape {
  double owned = 0;                     // floats this rank owns: dense / dp + expert / edp
  double grad_pair = 0;                 // floats of the two consecutive stages with the most parameters
  double gathered_stage = 0;            // the most floats of one stage that other ranks own (ZeRO-3 gathers them)
  double largest_stage = 0;             // floats of the largest stage
  double largest_prefetched_stage = 0;  // of the stages after the first in use order (ZeRO-3 prefetch staging)
  double largest_bucket = 0;            // floats of the largest bucket (ZeRO-1/2 gather staging)
  double largest_shared_bucket = 0;     // of the buckets reduced over more than one rank
  double first_stage_bucket = 0;        // of the first stage's buckets (ZeRO-3 gathers them without prefetch)
};

// One parameter tensor of a rank, in the order of build_param_table (src/model/params.cpp; a
// unit test keeps the two equal): its backward stage (-1 embeddings, 0..L-1 blocks, L the head,
// as grad_stage_of), elements, and whether it is a routed-expert tensor (reduced over edp).
struct TensorSize {
  int64_t stage = 0;
  int64_t numel = 0;
  bool expert = false;
};
// Rank 0 of pipeline stage `pp_stage`: the tensors of its layers, the embeddings on the first
// stage and the final norm and head on the last.
std::vector<TensorSize> rank_tensors(const Config& c, int64_t pp_stage);

// Rank 0 of pipeline stage `pp_stage` of the config's layout, for its parallel.zero_stage
// (stage-aligned buckets from stage 2 on, as the trainer builds them).
ZeroShape zero_shape(const Config& c, int64_t pp_stage);

// Bucket size the trainer uses (GradBuckets' default, 4 MiB of floats).
inline constexpr int64_t kBucketFloats = (int64_t(4) << 20) / 4;

}  // namespace moe::plan
