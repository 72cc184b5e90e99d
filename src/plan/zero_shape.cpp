#include "src/plan/zero_shape.h"

#include <algorithm>
#include <map>
#include <vector>

#include "src/model/params.h"
#include "src/parallel/grad_buckets.h"

namespace moe::plan {
namespace {

struct StageFloats {
  double dense = 0, expert = 0;
};

struct Bucket {
  double floats = 0;
  bool expert = false;
  int64_t stage = 0;
};

}  // namespace

ZeroShape zero_shape(const Config& c, int64_t pp_stage) {
  const auto& p = c.parallel;
  const int64_t L = c.model.n_layers, per = L / p.pp;
  const int64_t first = pp_stage * per, last = first + per - 1;
  const double dp = double(p.dp), edp = double(p.dp * p.tp / (p.ep * p.etp));
  const ParamTable table = build_param_table(c, ExpertShard{p.ep, 0, p.etp, 0}, TensorShard{p.tp, 0});
  // Backward stages this pipeline stage holds: -1 embeddings, 0..L-1 blocks, L the head.
  auto mine = [&](int64_t s) {
    return (s == -1 && pp_stage == 0) || (s == L && pp_stage == p.pp - 1) || (s >= first && s <= last);
  };
  std::map<int64_t, StageFloats> stages;
  std::vector<Bucket> buckets;
  const bool aligned = p.zero_stage >= 2;
  const auto& ps = table.params();
  for (size_t k = ps.size(); k-- > 0;) {  // the order GradBuckets walks them
    const ParamInfo& info = ps[k];
    const int64_t s = grad_stage_of(info.name, L);
    if (!mine(s)) continue;
    const double n = double(info.numel);
    (info.shard.expert ? stages[s].expert : stages[s].dense) += n;
    const bool open = !buckets.empty() && buckets.back().expert == info.shard.expert &&
                      buckets.back().floats < double(kBucketFloats) && (!aligned || buckets.back().stage == s);
    if (!open) buckets.push_back({0.0, info.shard.expert, s});
    buckets.back().floats += n;
    buckets.back().stage = std::min(buckets.back().stage, s);
  }
  ZeroShape z;
  const int64_t first_stage = stages.begin()->first;
  for (const auto& [s, f] : stages) {
    z.owned += f.dense / dp + f.expert / edp;
    z.largest_stage = std::max(z.largest_stage, f.dense + f.expert);
    if (s != first_stage) z.largest_prefetched_stage = std::max(z.largest_prefetched_stage, f.dense + f.expert);
    z.gathered_stage = std::max(z.gathered_stage, f.dense * (1 - 1 / dp) + f.expert * (1 - 1 / edp));
  }
  // Two consecutive stages in use order (forward and backward visit the same neighbours).
  for (auto it = stages.begin(); it != stages.end(); ++it) {
    auto next = std::next(it);
    const StageFloats a = it->second, b = next == stages.end() ? StageFloats{} : next->second;
    z.grad_pair = std::max(z.grad_pair, a.dense + a.expert + b.dense + b.expert);
  }
  for (const Bucket& b : buckets) {
    z.largest_bucket = std::max(z.largest_bucket, b.floats);
    if ((b.expert ? edp : dp) > 1) z.largest_shared_bucket = std::max(z.largest_shared_bucket, b.floats);
    if (b.stage == first_stage) z.first_stage_bucket = std::max(z.first_stage_bucket, b.floats);
  }
  return z;
}

}  // namespace moe::plan
