#include "src/plan/zero_shape.h"

#include <algorithm>
#include <map>
#include <vector>


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

std::vector<TensorSize> rank_tensors(const Config& c, int64_t pp_stage) {
  const auto& m = c.model;
  const auto& e = c.moe;
  const auto& p = c.parallel;
  const int64_t D = m.d_model, hd = m.head_dim(), V = m.vocab_size, L = m.n_layers, per = L / p.pp;
  std::vector<TensorSize> t;
  if (pp_stage == 0) t.push_back({-1, V * D, false});
  for (int64_t i = pp_stage * per; i < (pp_stage + 1) * per; ++i) {
    t.push_back({i, D, false});                             // attention_norm
    t.push_back({i, m.n_heads * hd / p.tp * D, false});     // wq
    t.push_back({i, m.n_kv_heads * hd / p.tp * D, false});  // wk
    t.push_back({i, m.n_kv_heads * hd / p.tp * D, false});  // wv
    t.push_back({i, D * m.n_heads * hd / p.tp, false});     // wo
    t.push_back({i, D, false});                             // ffn_norm
    if (!m.is_moe_layer(i)) {
      for (int k = 0; k < 3; ++k) t.push_back({i, m.ffn_hidden / p.tp * D, false});  // w1, w3, w2
      continue;
    }
    t.push_back({i, e.num_experts * D, false});  // router weight
    t.push_back({i, e.num_experts, false});      // router bias
    for (int k = 0; k < 3; ++k)                  // experts w1, w3, w2: E / ep experts, Fe / etp units
      t.push_back({i, e.num_experts / p.ep * (e.expert_hidden / p.etp) * D, true});
    if (e.num_shared_experts > 0)
      for (int k = 0; k < 3; ++k) t.push_back({i, e.num_shared_experts * e.expert_hidden * D, false});
  }
  if (pp_stage == p.pp - 1) {
    t.push_back({L, D, false});      // norm
    t.push_back({L, V * D, false});  // output
  }
  return t;
}

ZeroShape zero_shape(const Config& c, int64_t pp_stage) {
  const auto& p = c.parallel;
  const double dp = double(p.dp), edp = double(p.dp * p.tp / (p.ep * p.etp));
  const std::vector<TensorSize> tensors = rank_tensors(c, pp_stage);
  std::map<int64_t, StageFloats> stages;
  std::vector<Bucket> buckets;
  const bool aligned = p.zero_stage >= 2;
  for (size_t k = tensors.size(); k-- > 0;) {  // the order GradBuckets walks them
    const TensorSize& ts = tensors[k];
    const double n = double(ts.numel);
    (ts.expert ? stages[ts.stage].expert : stages[ts.stage].dense) += n;
    const bool open = !buckets.empty() && buckets.back().expert == ts.expert &&
                      buckets.back().floats < double(kBucketFloats) && (!aligned || buckets.back().stage == ts.stage);
    if (!open) buckets.push_back({0.0, ts.expert, ts.stage});
    buckets.back().floats += n;
    buckets.back().stage = std::min(buckets.back().stage, ts.stage);
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
