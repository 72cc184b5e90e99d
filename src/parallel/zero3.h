// ZeRO stage 3: parameters sharded over the data-parallel groups. The flat parameter buffer keeps
// its addresses, but only this rank's owned ranges (src/parallel/zero.h) stay in physical memory;
// the rest of each stage (embeddings, block i, head) is all-gathered right before the Transformer
// uses it and released (pages returned to the OS, src/core/page_memory.h) right after, forward and
// again backward. While stage s computes, the gather of the next stage in use order runs
// (prefetch). The optimizer updates the owned ranges in place, so nothing is gathered after it.
// Requires stage-aligned gradient buckets (a bucket never spans two stages).
#pragma once
#include <cstdint>
#include <vector>

#include "src/model/transformer.h"
#include "src/parallel/zero.h"

namespace moe {

class Zero3Params final : public ParamStageHooks {
 public:
  // params: the flat parameter buffer (all of it resident at construction; call release_all()).
  Zero3Params(const ZeroPartition& part, int64_t num_layers, float* params, int64_t total_floats);

  void before_use(int64_t stage, bool backward) override;
  void after_use(int64_t stage, bool backward) override;

  // Collective: every stage resident (checkpoint save, eval, diagnostics), then back to the owned
  // ranges only. Both finish an in-flight prefetch first.
  void gather_all();
  void release_all();
  // Whether stage `stage` is gathered now (in-flight prefetches not counted).
  bool resident(int64_t stage) const { return resident_[size_t(stage + 1)] != 0; }

  // Peak bytes of the parameter buffer held in physical memory (mincore), sampled whenever a stage
  // was gathered, since the last reset.
  int64_t peak_params_bytes() const { return peak_params_; }
  void reset_peaks();
  // Staging floats for the all-gathers (communication buffers).
  int64_t staging_floats() const { return int64_t(prefetch_staging_.capacity() + staging_.capacity()); }

 private:
  const std::vector<int64_t>& buckets_of(int64_t stage) const { return stage_buckets_[size_t(stage + 1)]; }
  void acquire(int64_t stage);
  void prefetch(int64_t stage);
  void complete_prefetch();
  void release(int64_t stage);
  void sample();

  const ZeroPartition& part_;
  int64_t L_;
  float* params_;
  int64_t total_;
  std::vector<std::vector<int64_t>> stage_buckets_;  // index stage + 1: the stage's bucket indices
  std::vector<char> resident_;                       // index stage + 1
  int64_t prefetching_ = -2;                          // stage being prefetched; -2 = none
  std::vector<std::vector<comm::RequestPtr>> prefetch_pending_;  // per bucket of that stage
  std::vector<int64_t> prefetch_at_;                  // staging offset per bucket of that stage
  std::vector<float> prefetch_staging_, staging_;
  int64_t peak_params_ = 0;
};

}  // namespace moe
