#include "moe/dispatcher.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "moe/dispatch_capacity.h"
#include "src/core/error.h"

namespace moe {

void plan_dispatch(DispatchPlan& plan, const int32_t* topk_idx, const float* topk_score, int64_t N, int64_t K,
                   int64_t E, double capacity_factor, int64_t global_tokens, const std::string& drop_policy,
                   comm::Communicator* batch_group) {
  const int64_t A = N * K;
  plan.tokens_per_expert.assign(size_t(E), 0);
  for (int64_t a = 0; a < A; ++a) plan.tokens_per_expert[size_t(topk_idx[a])]++;
  plan.capacity = capacity_factor > 0
                      ? int64_t(std::ceil(capacity_factor * double(global_tokens) * double(K) / double(E)))
                      : -1;
  // Assignments of each expert in token order (counting sort keeps it stable).
  std::vector<int64_t> start(size_t(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) start[size_t(e + 1)] = start[size_t(e)] + plan.tokens_per_expert[size_t(e)];
  std::vector<int32_t> by_expert(static_cast<size_t>(A));
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t a = 0; a < A; ++a) by_expert[size_t(fill[size_t(topk_idx[a])]++)] = int32_t(a);

  std::vector<int64_t> keep(plan.tokens_per_expert);
  if (plan.capacity >= 0) {
    CapacityInput in{by_expert.data(), start.data(), topk_score, N, K, E, plan.capacity};
    if (drop_policy == "probs") {
      keep_highest_scores(in, batch_group, by_expert.data(), keep.data());
    } else {
      MOE_CHECK(drop_policy == "position", "drop policy " + drop_policy);
      keep_earliest(in, batch_group, keep.data());
    }
  }

  plan.rows.clear();
  plan.slots.clear();
  plan.offsets.assign(size_t(E + 1), 0);
  plan.dropped = 0;
  for (int64_t e = 0; e < E; ++e) {
    // The kept assignments are the first keep[e] of the expert's list, in token order.
    plan.dropped += plan.tokens_per_expert[size_t(e)] - keep[size_t(e)];
    for (int64_t i = start[size_t(e)]; i < start[size_t(e)] + keep[size_t(e)]; ++i) {
      const int32_t a = by_expert[size_t(i)];
      plan.slots.push_back(a);
      plan.rows.push_back(int32_t(a / K));
    }
    plan.offsets[size_t(e + 1)] = int64_t(plan.rows.size());
  }
}

void LocalDispatcher::dispatch_preprocess(const DispatchPlan& plan) { plan_ = &plan; }

void LocalDispatcher::dispatch(const float* tokens, int64_t D) {
  tokens_ = tokens;  // one rank holds every expert: nothing moves
  D_ = D;
}

void LocalDispatcher::dispatch_postprocess(std::vector<float>& expert_in, std::vector<int64_t>& local_offsets) {
  const int64_t M = int64_t(plan_->rows.size());
  expert_in.resize(size_t(M * D_));
  ops::gather_rows(expert_in.data(), tokens_, plan_->rows.data(), M, D_);
  local_offsets = plan_->offsets;
}

void LocalDispatcher::combine_preprocess(const float* expert_out, const float* weights_by_slot) {
  const size_t M = plan_->rows.size();
  row_weights_.resize(M);
  for (size_t i = 0; i < M; ++i) row_weights_[i] = weights_by_slot[plan_->slots[i]];
  expert_out_ = expert_out;
}

void LocalDispatcher::combine_postprocess(float* out) {
  ops::scatter_add_rows(out, expert_out_, plan_->rows.data(), row_weights_.data(), int64_t(plan_->rows.size()),
                        D_);
}

void LocalDispatcher::combine_backward(float* dexpert_out, float* dweights_by_slot, const float* dout,
                                       const float* expert_out, const float* weights_by_slot) {
  const size_t M = plan_->rows.size();
  row_weights_.resize(M);
  for (size_t i = 0; i < M; ++i) row_weights_[i] = weights_by_slot[plan_->slots[i]];
  drow_weights_.assign(M, 0.0f);
  ops::scatter_add_rows_backward(dexpert_out, drow_weights_.data(), dout, expert_out, plan_->rows.data(),
                                 row_weights_.data(), int64_t(M), D_);
  for (size_t i = 0; i < M; ++i) dweights_by_slot[plan_->slots[i]] += drow_weights_[i];
}

void LocalDispatcher::dispatch_backward(float* dtokens, const float* dexpert_in) {
  ops::scatter_add_rows(dtokens, dexpert_in, plan_->rows.data(), nullptr, int64_t(plan_->rows.size()), D_);
}

}  // namespace moe
