#include "src/parallel/grad_buckets.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/model/phase_timer.h"
#include "src/parallel/zero.h"

namespace moe {

int64_t grad_stage_of(const std::string& name, int64_t num_layers) {
  if (name.rfind("tok_embeddings.", 0) == 0) return -1;
  if (name.rfind("layers.", 0) == 0) return std::stoll(name.substr(7, name.find('.', 7) - 7));
  return num_layers;  // final norm and output head
}

GradBuckets::GradBuckets(const ParamTable& table, int64_t num_layers, comm::Communicator& dp,
                         comm::Communicator& edp, int64_t bucket_bytes, const std::vector<bool>& skip)
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
                      buckets_.back().end - buckets_.back().begin < cap;
    skipped = false;
    if (!open) buckets_.push_back({p.offset, p.offset + p.numel, p.shard.expert, stage});
    GradBucket& b = buckets_.back();
    // Walking backwards, each parameter sits just below the bucket (alignment padding between
    // them holds zeros, so reducing it is harmless).
    b.begin = p.offset;
    b.ready_stage = std::min(b.ready_stage, stage);
  }
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
  while (next_ < buckets_.size() && buckets_[next_].ready_stage >= stage) launch(next_++, grads);
}

void GradBuckets::finish(float* grads) {
  while (next_ < buckets_.size()) launch(next_++, grads);
  PhaseScope wait(Phase::comm_wait);
  for (auto& r : pending_) r->wait();
  pending_.clear();
  if (zero_) zero_->finish_reduce_scatter(grads, shard_);
  next_ = 0;
}

}  // namespace moe
