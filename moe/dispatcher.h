// Moving tokens to their experts and back, in the six-hook contract of Megatron-Core (STYLE.md):
// dispatch_preprocess / dispatch / dispatch_postprocess, combine_preprocess / combine /
// combine_postprocess. Pre-process hooks never communicate, so a backend may overlap them with
// compute. LocalDispatcher serves one rank holding every expert; the expert-parallel dispatcher
// (all-to-all-v between ranks) implements the same hooks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/comm/communicator.h"

namespace moe {

// Which token rows go to which expert, grouped by expert and stable in token order.
struct DispatchPlan {
  std::vector<int32_t> rows;               // (M) source token row of each permuted row
  std::vector<int32_t> slots;              // (M) assignment index t*K + j
  std::vector<int64_t> offsets;            // (E+1) expert e owns rows [offsets[e], offsets[e+1])
  std::vector<int64_t> tokens_per_expert;  // (E) assignments before capacity drops
  int64_t dropped = 0;                     // assignments over capacity
  int64_t capacity = -1;                   // per expert; -1 = dropless
};

// capacity_factor 0 = dropless. Otherwise an expert keeps ceil(cf * global_tokens * K / E)
// assignments of the whole micro-batch: the highest-scoring ones (policy "probs", ties to the
// earlier global token) or the earliest global tokens (policy "position"). `batch_group` holds
// every rank of the micro-batch in token order (rank r's tokens follow rank r-1's: the dp group);
// when it has several ranks the choice is made over all of them, so it does not depend on the
// layout. Collective over batch_group when capacity applies.
void plan_dispatch(DispatchPlan& plan, const int32_t* topk_idx, const float* topk_score, int64_t N, int64_t K,
                   int64_t E, double capacity_factor, int64_t global_tokens, const std::string& drop_policy,
                   comm::Communicator* batch_group = nullptr);

class TokenDispatcher {
 public:
  explicit TokenDispatcher(comm::Communicator* batch_group = nullptr) : batch_group_(batch_group) {}
  virtual ~TokenDispatcher() = default;
  // Plans this rank's assignments (plan_dispatch over this dispatcher's batch group).
  void plan(DispatchPlan& plan, const int32_t* topk_idx, const float* topk_score, int64_t N, int64_t K, int64_t E,
            double capacity_factor, int64_t global_tokens, const std::string& drop_policy) {
    plan_dispatch(plan, topk_idx, topk_score, N, K, E, capacity_factor, global_tokens, drop_policy, batch_group_);
  }
  // Forward: tokens (N, D) in token order -> expert_in (M_local, D) grouped by the experts this rank
  // holds; local_offsets has E_local + 1 entries and M_local = local_offsets.back() (with expert
  // parallelism M_local counts the rows received from every rank, not this rank's plan).
  virtual void dispatch_preprocess(const DispatchPlan& plan) = 0;
  virtual void dispatch(const float* tokens, int64_t D) = 0;
  virtual void dispatch_postprocess(std::vector<float>& expert_in, std::vector<int64_t>& local_offsets) = 0;
  // Forward: expert_out (M, D) -> out (N, D) += weighted sum over each token's experts.
  virtual void combine_preprocess(const float* expert_out, const float* weights_by_slot) = 0;
  virtual void combine() = 0;
  virtual void combine_postprocess(float* out) = 0;
  // Backward mirrors: d(out) -> d(expert_out) (M_local, D, accumulated) and d(weights);
  // d(expert_in) (M_local, D) -> d(tokens) (accumulated).
  virtual void combine_backward(float* dexpert_out, float* dweights_by_slot, const float* dout,
                                const float* expert_out, const float* weights_by_slot) = 0;
  virtual void dispatch_backward(float* dtokens, const float* dexpert_in) = 0;
  // parallel.recompute block re-runs the forward hooks in backward, identically; per-step
  // counters then add to the forward's instead of starting over.
  void set_recomputing(bool on) { recomputing_ = on; }

 protected:
  bool recomputing() const { return recomputing_; }

 private:
  comm::Communicator* batch_group_;
  bool recomputing_ = false;
};

class LocalDispatcher final : public TokenDispatcher {
 public:
  explicit LocalDispatcher(comm::Communicator* batch_group = nullptr) : TokenDispatcher(batch_group) {}
  void dispatch_preprocess(const DispatchPlan& plan) override;
  void dispatch(const float* tokens, int64_t D) override;
  void dispatch_postprocess(std::vector<float>& expert_in, std::vector<int64_t>& local_offsets) override;
  void combine_preprocess(const float* expert_out, const float* weights_by_slot) override;
  void combine() override {}
  void combine_postprocess(float* out) override;
  void combine_backward(float* dexpert_out, float* dweights_by_slot, const float* dout, const float* expert_out,
                        const float* weights_by_slot) override;
  void dispatch_backward(float* dtokens, const float* dexpert_in) override;

 private:
  const DispatchPlan* plan_ = nullptr;
  const float* tokens_ = nullptr;
  const float* expert_out_ = nullptr;
  int64_t D_ = 0;
  std::vector<float> row_weights_, drow_weights_;  // (M) combine weight per permuted row
};

}  // namespace moe
