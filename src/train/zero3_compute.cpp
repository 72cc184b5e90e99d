#include "src/train/zero3_compute.h"

#include "src/core/error.h"

namespace moe {

Zero3ComputeHooks::Zero3ComputeHooks(Zero3Params& z3, const ZeroPartition& part, int64_t num_layers,
                                     ComputeWeights& w, const ModelState& model)
    : z3_(z3), w_(w), model_(model) {
  ranges_.resize(size_t(num_layers + 2));
  for (const ZeroRange& z : part.ranges()) {  // the same stage -> buckets map as Zero3Params
    const GradBucket& b = part.bucket(z.bucket);
    MOE_CHECK(b.ready_stage >= -1 && b.ready_stage <= num_layers, "Zero3ComputeHooks: bucket stage out of range");
    ranges_[size_t(b.ready_stage + 1)].emplace_back(b.begin, b.end);
  }
  rounded_.assign(ranges_.size(), 0);
  w_.set_per_range();
}

void Zero3ComputeHooks::before_use(int64_t stage, bool backward) {
  z3_.before_use(stage, backward);
  char& done = rounded_[size_t(stage + 1)];
  if (done) return;
  for (const auto& [begin, end] : ranges_[size_t(stage + 1)]) w_.refresh_range(model_, begin, end);
  done = 1;
  w_.sample_resident();
}

void Zero3ComputeHooks::after_use(int64_t stage, bool backward) {
  z3_.after_use(stage, backward);
  if (!z3_.resident(stage)) release(stage);  // kept only while the master keeps it (the head)
}

void Zero3ComputeHooks::begin_step() {
  for (int64_t s = -1; s + 1 < int64_t(ranges_.size()); ++s) release(s);
}

void Zero3ComputeHooks::release(int64_t stage) {
  char& done = rounded_[size_t(stage + 1)];
  if (!done) return;
  for (const auto& [begin, end] : ranges_[size_t(stage + 1)]) w_.release_range(begin, end);
  done = 0;
}

}  // namespace moe
