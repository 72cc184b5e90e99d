// Data-parallel gradient reduction in buckets. Parameters are grouped, in the reverse order of
// their use in forward (the order backward finishes them), into buckets of about bucket_bytes;
// dense parameters reduce over the dp group and routed-expert parameters over the edp group
// (ranks holding the same experts), so a bucket never mixes the two. As backward reports each
// stage final (Transformer::GradsReadyFn), every bucket whose parameters are all final starts a
// non-blocking all-reduce; finish() starts the rest and waits for all before the optimizer.
#pragma once
#include <cstdint>
#include <vector>

#include "src/comm/communicator.h"
#include "src/model/params.h"

namespace moe {

class ZeroPartition;  // src/parallel/zero.h

struct GradBucket {
  int64_t begin = 0, end = 0;  // float range of the flat gradient buffer
  bool expert = false;         // reduced over edp instead of dp
  int64_t ready_stage = 0;     // final once backward has reported this stage
};

class GradBuckets {
 public:
  // skip (one entry per table parameter, or empty): parameters left out of every bucket (those of
  // other pipeline stages). stage_aligned: a bucket never spans two backward stages (ZeRO 2 and 3
  // release and gather stage by stage).
  GradBuckets(const ParamTable& table, int64_t num_layers, comm::Communicator& dp, comm::Communicator& edp,
              int64_t bucket_bytes = int64_t(4) << 20, const std::vector<bool>& skip = {},
              bool stage_aligned = false);
  // Backward reached `stage` (L = head, L-1 .. 0 = blocks, -1 = embeddings); grads is the buffer.
  void on_stage_ready(int64_t stage, float* grads);
  // Starts the buckets not started yet, waits for every one; then resets for the next step.
  void finish(float* grads);
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  // With release: the most gradient-buffer bytes held in physical memory at once (mincore,
  // sampled as each stage becomes ready), since the last reset.
  int64_t peak_resident_bytes() const { return peak_resident_; }
  void reset_peak() { peak_resident_ = 0; }
  // Bytes of the largest backward stage's buckets (meaningful for stage-aligned buckets).
  int64_t max_stage_bytes() const;
  // ZeRO stage 2: reduce-scatter each bucket into `shard` (this rank's gradient shard) instead of
  // all-reducing it; the full buffer keeps serving as backward's workspace.
  // release = true (stages 2 and 3): once a stage's reduce-scatter completes (waited for when the next
  // stage is ready, so it overlaps that stage's backward), its gradient range is zeroed and its pages
  // go back to the OS: at most two stages of full gradients exist at a time.
  void reduce_scatter_into(const ZeroPartition* part, float* shard, bool release = false) {
    zero_ = part;
    shard_ = shard;
    release_ = release;
  }

 private:
  void launch(size_t i, float* grads);
  void retire(size_t upto, float* grads);  // release_: waits, finishes and frees buckets [retired_, upto)
  comm::Communicator& dp_;
  comm::Communicator& edp_;
  std::vector<GradBucket> buckets_;
  std::vector<comm::RequestPtr> pending_;
  size_t next_ = 0, retired_ = 0;
  bool release_ = false;
  int64_t peak_resident_ = 0;
  const ZeroPartition* zero_ = nullptr;
  float* shard_ = nullptr;
};

// Backward stage after which a parameter's gradient is final (see Transformer::GradsReadyFn).
int64_t grad_stage_of(const std::string& name, int64_t num_layers);

}  // namespace moe
