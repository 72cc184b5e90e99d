#include "src/parallel/grad_buckets.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/core/page_memory.h"
#include "src/model/phase_timer.h"
#include "src/parallel/zero.h"

namespace moe {

int64_t grad_stage_of(const std::string& name, int64_t num_layers) {
  if (name.rfind("tok_embeddings.", 0) == 0) return -1;
  if (name.rfind("layers.", 0) == 0) return std::stoll(name.substr(7, name.find('.', 7) - 7));
  return num_layers;  // final norm and output head
}

GradBuckets::GradBuckets(const ParamTable& table, int64_t num_layers, comm::Communicator& dp,
                         comm::Communicator& edp, int64_t bucket_bytes, const std::vector<bool>& skip,
                         bool stage_aligned)
    : dp_(dp), edp_(edp) {
  const auto& ps = table.params();
  const int64_t cap = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  bool skipped = false;  // a left-out parameter closes the bucket: buckets stay contiguous
  for (size_t k = ps.size(); k-- > 0;) {
    const ParamInfo& p = ps[k];
    if (!skip.empty() && skip[k]) {
      skipped = true;
      continue;
    }
    const int64_t stage = grad_stage_of(p.name, num_layers);
    const bool open = !buckets_.empty() && !skipped && buckets_.back().expert == p.shard.expert &&
                      buckets_.back().end - buckets_.back().begin < cap &&
                      (!stage_aligned || buckets_.back().ready_stage == stage);
    skipped = false;
    if (!open) buckets_.push_back({p.offset, p.offset + p.numel, p.shard.expert, stage});
    GradBucket& b = buckets_.back();
    // Walking backwards, each parameter sits just below the bucket (alignment padding between
    // them holds zeros, so reducing it is harmless).
    b.begin = p.offset;
    b.ready_stage = std::min(b.ready_stage, stage);
  }
}

int64_t GradBuckets::max_stage_bytes() const {
  int64_t most = 0, run = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    if (i > 0 && buckets_[i].ready_stage != buckets_[i - 1].ready_stage) run = 0;
    run += buckets_[i].end - buckets_[i].begin;
    most = std::max(most, run);
  }
  return most * int64_t(sizeof(float));
}

void GradBuckets::launch(size_t i, float* grads) {
  const GradBucket& b = buckets_[i];
  if (zero_) {
    zero_->launch_reduce_scatter(int64_t(i), grads, shard_, pending_);
    return;
  }
  comm::Communicator& group = b.expert ? edp_ : dp_;
  if (group.size() > 1) pending_.push_back(group.iallreduce_sum(grads + b.begin, b.end - b.begin));
}

void GradBuckets::on_stage_ready(int64_t stage, float* grads) {
  const size_t launched_before = next_;
  const size_t pending_before = pending_.size();
  while (next_ < buckets_.size() && buckets_[next_].ready_stage >= stage) launch(next_++, grads);
  if (!release_) return;
  if (!buckets_.empty())
    peak_resident_ = std::max(peak_resident_, resident_bytes(grads + buckets_.back().begin,
                                                             buckets_.front().end - buckets_.back().begin));
  if (launched_before == retired_) return;
  // The previous stages' reductions had this stage's backward to overlap with: finish them now.
  {
    PhaseScope wait(Phase::comm_wait);
    for (size_t i = 0; i < pending_before; ++i) pending_[i]->wait();
  }
  pending_.erase(pending_.begin(), pending_.begin() + std::ptrdiff_t(pending_before));
  retire(launched_before, grads);
}

void GradBuckets::retire(size_t upto, float* grads) {
  for (; retired_ < upto; ++retired_) {
    zero_->finish_reduce_scatter_bucket(int64_t(retired_), grads, shard_);
    const GradBucket& b = buckets_[retired_];
    release_floats(grads + b.begin, b.end - b.begin);
  }
}

void GradBuckets::finish(float* grads) {
  while (next_ < buckets_.size()) launch(next_++, grads);
  {
    PhaseScope wait(Phase::comm_wait);
    for (auto& r : pending_) r->wait();
  }
  pending_.clear();
  if (release_) {
    retire(buckets_.size(), grads);
  } else if (zero_) {
    zero_->finish_reduce_scatter(grads, shard_);
  }
  next_ = 0;
  retired_ = 0;
}

}  // namespace moe
