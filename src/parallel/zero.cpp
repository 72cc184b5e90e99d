#include "src/parallel/zero.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/core/page_memory.h"

namespace moe {

ZeroPartition::ZeroPartition(const std::vector<GradBucket>& buckets, comm::Communicator& dp, comm::Communicator& edp)
    : buckets_(buckets), dp_(dp), edp_(edp) {
  for (size_t b = 0; b < buckets.size(); ++b) {
    const comm::Communicator& g = group(int64_t(b));
    const int64_t n = buckets[b].end - buckets[b].begin, size = g.size(), r = g.rank();
    ZeroRange z;
    z.bucket = int64_t(b);
    z.chunk = n / size;
    z.tail = n - z.chunk * size;
    z.begin = buckets[b].begin + r * z.chunk;
    z.owned = z.chunk + (r == size - 1 ? z.tail : 0);
    z.shard_off = shard_floats_;
    shard_floats_ += z.owned;
    ranges_.push_back(z);
  }
}

std::vector<std::pair<int64_t, int64_t>> ZeroPartition::owned_ranges() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const ZeroRange& z : ranges_) out.emplace_back(z.begin, z.begin + z.owned);
  return out;
}

void ZeroPartition::launch_reduce_scatter(int64_t b, float* grads, float* shard,
                                          std::vector<comm::RequestPtr>& pending) const {
  const ZeroRange& z = ranges_[size_t(b)];
  comm::Communicator& g = group(b);
  float* base = grads + bucket(b).begin;
  if (g.size() == 1) {  // the whole bucket is this rank's
    std::copy(base, base + z.owned, shard + z.shard_off);
    return;
  }
  if (z.chunk > 0) pending.push_back(g.ireduce_scatter_sum(base, shard + z.shard_off, z.chunk));
  // The tail (< group size floats) is all-reduced in place; the last rank copies it afterwards.
  if (z.tail > 0) pending.push_back(g.iallreduce_sum(base + z.chunk * g.size(), z.tail));
}

void ZeroPartition::finish_reduce_scatter(const float* grads, float* shard) const {
  for (const ZeroRange& z : ranges_) finish_reduce_scatter_bucket(z.bucket, grads, shard);
}

void ZeroPartition::finish_reduce_scatter_bucket(int64_t b, const float* grads, float* shard) const {
  const ZeroRange& z = ranges_[size_t(b)];
  const comm::Communicator& g = group(b);
  if (g.size() == 1 || z.owned == z.chunk) return;
  const float* tail = grads + bucket(b).begin + z.chunk * g.size();
  std::copy(tail, tail + z.tail, shard + z.shard_off + z.chunk);
}

int64_t ZeroPartition::max_gather_floats() const {
  int64_t m = 0;
  for (const ZeroRange& z : ranges_)
    if (group(z.bucket).size() > 1) m = std::max(m, z.chunk * group(z.bucket).size());  // size 1: no gather
  return m;
}

void ZeroPartition::gather(float* full, std::vector<float>& staging) const {
  for (const ZeroRange& z : ranges_) gather_bucket(z.bucket, full, staging);
}

void ZeroPartition::start_gather(int64_t b, const float* full, float* staging,
                                 std::vector<comm::RequestPtr>& pending) const {
  const ZeroRange& z = ranges_[size_t(b)];
  comm::Communicator& g = group(b);
  // Send and receive buffers must not overlap (MPI), hence the staging buffer.
  if (g.size() > 1 && z.chunk > 0) pending.push_back(g.iallgather(full + z.begin, staging, z.chunk * int64_t(sizeof(float))));
}

void ZeroPartition::complete_gather(int64_t b, float* full, const float* staging,
                                    std::vector<comm::RequestPtr>& pending) const {
  for (auto& r : pending) r->wait();
  pending.clear();
  const ZeroRange& z = ranges_[size_t(b)];
  comm::Communicator& g = group(b);
  if (g.size() == 1) return;
  float* base = full + bucket(b).begin;
  const int64_t mine = int64_t(g.rank());
  for (int64_t r = 0; r < g.size(); ++r)  // this rank's chunk is already in place
    if (r != mine) std::copy_n(staging + r * z.chunk, z.chunk, base + r * z.chunk);
  if (z.tail > 0) g.broadcast(base + z.chunk * g.size(), z.tail * int64_t(sizeof(float)), g.size() - 1);
}

void ZeroPartition::gather_bucket(int64_t b, float* full, std::vector<float>& staging) const {
  const ZeroRange& z = ranges_[size_t(b)];
  staging.resize(std::max(staging.size(), size_t(z.chunk * group(b).size())));
  std::vector<comm::RequestPtr> pending;
  start_gather(b, full, staging.data(), pending);
  complete_gather(b, full, staging.data(), pending);
}

void ZeroPartition::release_unowned(int64_t b, float* full) const {
  const ZeroRange& z = ranges_[size_t(b)];
  if (group(b).size() == 1) return;
  const GradBucket& k = bucket(b);
  release_floats(full + k.begin, z.begin - k.begin);
  release_floats(full + z.begin + z.owned, k.end - (z.begin + z.owned));
}

void ZeroPartition::extract(const float* full, float* shard) const {
  for (const ZeroRange& z : ranges_) std::copy(full + z.begin, full + z.begin + z.owned, shard + z.shard_off);
}

void ZeroPartition::place(const float* shard, float* full) const {
  for (const ZeroRange& z : ranges_) std::copy(shard + z.shard_off, shard + z.shard_off + z.owned, full + z.begin);
}

}  // namespace moe
