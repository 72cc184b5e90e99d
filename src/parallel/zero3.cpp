#include "src/parallel/zero3.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/core/page_memory.h"
#include "src/model/phase_timer.h"

namespace moe {

namespace {
constexpr int64_t kNone = -2;
}

Zero3Params::Zero3Params(const ZeroPartition& part, int64_t num_layers, float* params, int64_t total_floats)
    : part_(part), L_(num_layers), params_(params), total_(total_floats) {
  stage_buckets_.resize(size_t(L_ + 2));
  for (const ZeroRange& z : part.ranges()) {
    const GradBucket& b = part.bucket(z.bucket);
    MOE_CHECK(b.ready_stage >= -1 && b.ready_stage <= L_, "Zero3Params: bucket stage out of range");
    stage_buckets_[size_t(b.ready_stage + 1)].push_back(z.bucket);
  }
  resident_.assign(size_t(L_ + 2), 1);
}

void Zero3Params::before_use(int64_t stage, bool backward) {
  acquire(stage);
  // The next stage in use order: forward goes up to the head, backward down to block 0 (the
  // embedding backward needs no parameters).
  const int64_t next = backward ? stage - 1 : stage + 1;
  if (next >= (backward ? 0 : -1) && next <= L_) prefetch(next);
  sample();
}

void Zero3Params::after_use(int64_t stage, bool backward) {
  // The head's forward is followed at once by its backward: keep it until then.
  if (!backward && stage == L_) return;
  release(stage);
}

void Zero3Params::acquire(int64_t stage) {
  if (prefetching_ == stage) complete_prefetch();
  if (resident_[size_t(stage + 1)]) return;
  PhaseScope wait(Phase::comm_wait);
  for (int64_t b : buckets_of(stage)) part_.gather_bucket(b, params_, staging_);
  resident_[size_t(stage + 1)] = 1;
}

void Zero3Params::prefetch(int64_t stage) {
  if (resident_[size_t(stage + 1)] || prefetching_ == stage) return;
  if (prefetching_ != kNone) complete_prefetch();
  const auto& buckets = buckets_of(stage);
  prefetch_pending_.clear();
  prefetch_pending_.resize(buckets.size());
  prefetch_at_.assign(buckets.size(), 0);
  int64_t need = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    prefetch_at_[i] = need;
    const ZeroRange& z = part_.ranges()[size_t(buckets[i])];
    need += z.chunk * part_.group(buckets[i]).size();
  }
  // Grown before any request points into it (a resize would move the buffer).
  if (prefetch_staging_.size() < size_t(need)) prefetch_staging_.resize(size_t(need));
  for (size_t i = 0; i < buckets.size(); ++i)
    part_.start_gather(buckets[i], params_, prefetch_staging_.data() + prefetch_at_[i], prefetch_pending_[i]);
  prefetching_ = stage;
}

void Zero3Params::complete_prefetch() {
  if (prefetching_ == kNone) return;
  PhaseScope wait(Phase::comm_wait);
  const auto& buckets = buckets_of(prefetching_);
  for (size_t i = 0; i < buckets.size(); ++i)
    part_.complete_gather(buckets[i], params_, prefetch_staging_.data() + prefetch_at_[i], prefetch_pending_[i]);
  resident_[size_t(prefetching_ + 1)] = 1;
  prefetching_ = kNone;
}

void Zero3Params::release(int64_t stage) {
  if (!resident_[size_t(stage + 1)]) return;
  for (int64_t b : buckets_of(stage)) part_.release_unowned(b, params_);
  resident_[size_t(stage + 1)] = 0;
}

void Zero3Params::gather_all() {
  complete_prefetch();
  for (int64_t s = -1; s <= L_; ++s) acquire(s);
}

void Zero3Params::release_all() {
  complete_prefetch();
  for (int64_t s = -1; s <= L_; ++s) release(s);
}

void Zero3Params::sample() {
  peak_params_ = std::max(peak_params_, resident_bytes(params_, total_));
}

void Zero3Params::reset_peaks() { peak_params_ = 0; }

}  // namespace moe
