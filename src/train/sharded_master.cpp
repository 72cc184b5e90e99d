#include "src/train/sharded_master.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/core/page_memory.h"

namespace moe {

namespace {

// Float ranges of the tensors the copy keeps exact (fp32), for the 16-bit gather.
std::vector<std::pair<int64_t, int64_t>> exact_ranges(const ParamTable& table) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const ParamInfo& p : table.params())
    if (!ComputeWeights::rounds(p.name)) out.emplace_back(p.offset, p.offset + p.numel);
  return out;
}

}  // namespace

ShardedMaster::ShardedMaster(const ZeroPartition& part, ComputeWeights& w, ModelState& model)
    : part_(part), w_(w), model_(model) {
  half_ = std::make_unique<HalfGather>(part, exact_ranges(model.table), w.precision());
  const auto& ps = model.table.params();
  auto in_partition = [&](const ParamInfo& p) {  // not another pipeline stage's
    for (const ZeroRange& z : part.ranges())
      if (p.offset >= part.bucket(z.bucket).begin && p.offset < part.bucket(z.bucket).end) return true;
    return false;
  };
  for (size_t i = 0; i < ps.size(); ++i) {
    if (ps[i].trainable || !in_partition(ps[i])) continue;
    MOE_CHECK(!ComputeWeights::rounds(ps[i].name), "ShardedMaster: " + ps[i].name + " is not kept exact in the copy");
    untrained_.push_back(i);
  }
  w_.set_per_range();
  release_master();
}

void ShardedMaster::refresh_copy() {
  release_master();
  for (const ZeroRange& z : part_.ranges()) w_.refresh_range(model_, z.begin, z.begin + z.owned);
  half_->gather(w_.data());
  w_.sample_resident();
  sample();
}

void ShardedMaster::refill_untrained() {
  const auto& ps = model_.table.params();
  for (size_t i : untrained_)
    std::copy_n(w_.data() + ps[i].offset, ps[i].numel, model_.params.data() + ps[i].offset);
  sample();
}

void ShardedMaster::gather_master(std::vector<float>& staging) { part_.gather(model_.params.data(), staging); }

void ShardedMaster::release_master() {
  for (const ZeroRange& z : part_.ranges()) part_.release_unowned(z.bucket, model_.params.data());
}

int64_t ShardedMaster::staging_floats() const {
  return (half_->staging_bytes() + 3) / 4;
}

void ShardedMaster::sample() {
  peak_master_ = std::max(peak_master_, resident_bytes(model_.params.data(), int64_t(model_.params.size())));
}

}  // namespace moe
