// ZeRO sharding (stages 1 and 2) over the data-parallel groups: dense tensors over dp, routed-expert
// tensors over edp. The partition follows the gradient buckets (src/parallel/grad_buckets.h): each
// bucket [begin, end) of n floats over a group of size g is cut into g equal chunks of q = n / g
// floats (rank r owns [begin + r q, begin + (r + 1) q)), and the last rank also owns the tail of
// n - g q < g floats. So every rank owns about 1/g of each group's flat buffer, the pieces line up
// with a bucket's reduce-scatter, and nothing is padded or copied to make sizes divide.
//
// A rank's shard is the concatenation of its owned ranges, bucket by bucket (shard_floats()).
// Stage 1: gradients are all-reduced as in stage 0; the optimizer reads the owned ranges.
// Stage 2: each bucket is reduce-scattered (its tail all-reduced) into the gradient shard.
// Both: the optimizer updates only owned parameters, then gather_params() all-gathers them.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "src/comm/communicator.h"
#include "src/parallel/grad_buckets.h"

namespace moe {

struct ZeroRange {
  int64_t bucket = 0;     // index into GradBuckets::buckets()
  int64_t begin = 0;      // first float of the flat buffer this rank owns in the bucket
  int64_t chunk = 0;      // q: floats per rank in the bucket's reduce-scatter
  int64_t tail = 0;       // floats after the g chunks (the bucket's, on every rank; owned by the last)
  int64_t owned = 0;      // floats this rank owns: chunk, plus tail on the last rank
  int64_t shard_off = 0;  // where they sit in this rank's shard
};

class ZeroPartition {
 public:
  ZeroPartition(const std::vector<GradBucket>& buckets, comm::Communicator& dp, comm::Communicator& edp);
  const std::vector<ZeroRange>& ranges() const { return ranges_; }
  int64_t shard_floats() const { return shard_floats_; }
  // This rank's owned float ranges [begin, end) of the flat buffer, bucket by bucket.
  std::vector<std::pair<int64_t, int64_t>> owned_ranges() const;
  comm::Communicator& group(int64_t bucket) const { return buckets_[size_t(bucket)].expert ? edp_ : dp_; }
  const GradBucket& bucket(int64_t b) const { return buckets_[size_t(b)]; }

  // Stage 2: starts bucket b's reduce-scatter of `grads` (the full flat buffer) into `shard`.
  void launch_reduce_scatter(int64_t b, float* grads, float* shard, std::vector<comm::RequestPtr>& pending) const;
  // After every launched request was waited on: moves each last rank's reduced tail into the shard.
  void finish_reduce_scatter(const float* grads, float* shard) const;
  void finish_reduce_scatter_bucket(int64_t b, const float* grads, float* shard) const;  // one bucket's
  // The full buffer `full` gets every rank's owned ranges (each rank's own are already in place).
  // staging: scratch of max_gather_floats() floats.
  void gather(float* full, std::vector<float>& staging) const;
  int64_t max_gather_floats() const;
  // Stage 3, one bucket at a time: start_gather all-gathers the chunks into `staging` (at least
  // chunk x group size floats) without blocking; complete_gather waits, places the other ranks'
  // chunks into `full` and broadcasts the tail. gather_bucket does both.
  void start_gather(int64_t b, const float* full, float* staging, std::vector<comm::RequestPtr>& pending) const;
  void complete_gather(int64_t b, float* full, const float* staging, std::vector<comm::RequestPtr>& pending) const;
  void gather_bucket(int64_t b, float* full, std::vector<float>& staging) const;
  // Stage 3: zeroes the bucket's floats this rank does not own and returns their pages to the OS.
  void release_unowned(int64_t b, float* full) const;
  // Copies this rank's owned ranges of `full` into `shard`, and back.
  void extract(const float* full, float* shard) const;
  void place(const float* shard, float* full) const;

 private:
  const std::vector<GradBucket>& buckets_;
  comm::Communicator& dp_;
  comm::Communicator& edp_;
  std::vector<ZeroRange> ranges_;
  int64_t shard_floats_ = 0;
};

}  // namespace moe
