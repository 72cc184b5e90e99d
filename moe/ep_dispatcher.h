// Expert-parallel token dispatcher: the E experts of a layer are divided over the ep group (rank
// r holds experts [r*E/ep, (r+1)*E/ep)), tokens travel to their experts' ranks by all-to-all-v
// and back. The six hooks of TokenDispatcher (dispatcher.h):
//   dispatch_preprocess   per-destination, per-expert row counts from the plan (no communication)
//   dispatch              counts by all-to-all, then the token rows by all-to-all-v
//   dispatch_postprocess  received rows (source-major) reordered by local expert
//   combine_preprocess    expert outputs put back in received order
//   combine               all-to-all-v back to the tokens' ranks
//   combine_postprocess   weighted scatter-add into the token rows
// Backward mirrors both (combine_backward sends d(expert_out) to the experts; dispatch_backward
// returns d(tokens)). Combine weights are applied on the token's own rank.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/dispatcher.h"
#include "src/comm/communicator.h"

namespace moe {

class EpDispatcher final : public TokenDispatcher {
 public:
  // ep: the expert-parallel group; batch_group: every rank of the micro-batch (for capacity).
  EpDispatcher(comm::Communicator& ep, comm::Communicator* batch_group, int64_t num_experts);

  void dispatch_preprocess(const DispatchPlan& plan) override;
  void dispatch(const float* tokens, int64_t D) override;
  void dispatch_postprocess(std::vector<float>& expert_in, std::vector<int64_t>& local_offsets) override;
  void combine_preprocess(const float* expert_out, const float* weights_by_slot) override;
  void combine() override;
  void combine_postprocess(float* out) override;
  void combine_backward(float* dexpert_out, float* dweights_by_slot, const float* dout, const float* expert_out,
                        const float* weights_by_slot) override;
  void dispatch_backward(float* dtokens, const float* dexpert_in) override;

  int64_t local_experts() const { return El_; }
  // Bytes of token rows this rank sent to each ep rank (P entries, its own rank included) by the
  // all-to-all-v of this step so far: dispatch, combine and their backward twins. The counts
  // exchange is not included. Zeroed by dispatch_preprocess, i.e. at each forward (not by a
  // recompute pass, whose re-sent rows add to the step's).
  const std::vector<int64_t>& sent_bytes() const { return sent_bytes_; }

 private:
  // rows (source-major) <-> local expert order
  void to_local_order(float* dst, const float* received, bool accumulate) const;
  void to_received_order(float* dst, const float* local) const;
  // Sends rows of D floats: send_rows[r] to rank r, receives recv_rows[r] from rank r.
  void exchange(const float* send, const std::vector<int64_t>& send_rows, float* recv,
                const std::vector<int64_t>& recv_rows);

  comm::Communicator& ep_;
  int64_t E_, El_, P_;
  const DispatchPlan* plan_ = nullptr;
  int64_t D_ = 0;
  std::vector<int64_t> send_counts_, recv_counts_;  // (P*El) rows per (peer, local expert of the receiver)
  std::vector<int64_t> send_rows_, recv_rows_;      // (P) rows per peer
  std::vector<int64_t> perm_;                       // (M_local) received-order row of each local-order row
  std::vector<int64_t> local_offsets_;              // (El+1)
  std::vector<float> send_buf_, recv_buf_;          // scratch for the exchanges
  std::vector<float> returned_;                     // (M, D) expert outputs back in plan order
  std::vector<float> row_weights_, drow_weights_;   // (M) combine weight per plan row
  std::vector<int64_t> sent_bytes_;                 // (P) see sent_bytes()
};

}  // namespace moe
