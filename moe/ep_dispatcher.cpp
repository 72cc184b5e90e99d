#include "moe/ep_dispatcher.h"

#include <cstring>

#include "kernels/ops.h"
#include "src/core/error.h"
#include "src/model/phase_timer.h"

namespace moe {

EpDispatcher::EpDispatcher(comm::Communicator& ep, comm::Communicator* batch_group, int64_t num_experts)
    : TokenDispatcher(batch_group), ep_(ep), E_(num_experts), P_(ep.size()) {
  MOE_CHECK(E_ % P_ == 0, "moe.num_experts must divide over the ep group");
  El_ = E_ / P_;
}

void EpDispatcher::dispatch_preprocess(const DispatchPlan& plan) {
  plan_ = &plan;
  MOE_CHECK(int64_t(plan.offsets.size()) == E_ + 1, "plan for another expert count");
  // Global expert e = r*El + j lives on rank r as local expert j, so the plan's expert order is
  // already destination-major.
  send_counts_.resize(size_t(E_));
  send_rows_.assign(size_t(P_), 0);
  if (!recomputing()) sent_bytes_.assign(size_t(P_), 0);
  for (int64_t e = 0; e < E_; ++e) {
    send_counts_[size_t(e)] = plan.offsets[size_t(e + 1)] - plan.offsets[size_t(e)];
    send_rows_[size_t(e / El_)] += send_counts_[size_t(e)];
  }
}

void EpDispatcher::exchange(const float* send, const std::vector<int64_t>& send_rows, float* recv,
                            const std::vector<int64_t>& recv_rows) {
  std::vector<int64_t> sb(static_cast<size_t>(P_)), rb(static_cast<size_t>(P_));
  for (int64_t r = 0; r < P_; ++r) {
    sb[size_t(r)] = send_rows[size_t(r)] * D_ * int64_t(sizeof(float));
    rb[size_t(r)] = recv_rows[size_t(r)] * D_ * int64_t(sizeof(float));
    sent_bytes_[size_t(r)] += sb[size_t(r)];
  }
  PhaseScope wait(Phase::comm_wait);
  ep_.alltoallv(send, sb.data(), recv, rb.data());
}

void EpDispatcher::dispatch(const float* tokens, int64_t D) {
  D_ = D;
  recv_counts_.resize(size_t(E_));
  {
    PhaseScope wait(Phase::comm_wait);
    ep_.alltoall(send_counts_.data(), recv_counts_.data(), El_ * int64_t(sizeof(int64_t)));
  }
  recv_rows_.assign(size_t(P_), 0);
  for (int64_t i = 0; i < E_; ++i) recv_rows_[size_t(i / El_)] += recv_counts_[size_t(i)];

  const int64_t M = int64_t(plan_->rows.size());
  send_buf_.resize(size_t(M * D));
  ops::gather_rows(send_buf_.data(), tokens, plan_->rows.data(), M, D);
  int64_t Mr = 0;
  for (int64_t n : recv_rows_) Mr += n;
  recv_buf_.resize(size_t(Mr * D));
  exchange(send_buf_.data(), send_rows_, recv_buf_.data(), recv_rows_);

  // Received block of source s holds its rows for my local experts 0..El-1 in turn.
  local_offsets_.assign(size_t(El_ + 1), 0);
  for (int64_t j = 0; j < El_; ++j) {
    int64_t n = 0;
    for (int64_t s = 0; s < P_; ++s) n += recv_counts_[size_t(s * El_ + j)];
    local_offsets_[size_t(j + 1)] = local_offsets_[size_t(j)] + n;
  }
  perm_.resize(size_t(Mr));
  std::vector<int64_t> fill(local_offsets_.begin(), local_offsets_.end() - 1);
  int64_t at = 0;
  for (int64_t s = 0; s < P_; ++s)
    for (int64_t j = 0; j < El_; ++j)
      for (int64_t i = 0; i < recv_counts_[size_t(s * El_ + j)]; ++i) perm_[size_t(fill[size_t(j)]++)] = at++;
}

void EpDispatcher::to_local_order(float* dst, const float* received, bool accumulate) const {
  for (size_t i = 0; i < perm_.size(); ++i) {
    const float* src = received + perm_[i] * D_;
    float* d = dst + int64_t(i) * D_;
    if (accumulate) {
      for (int64_t j = 0; j < D_; ++j) d[j] += src[j];
    } else {
      std::memcpy(d, src, sizeof(float) * size_t(D_));
    }
  }
}

void EpDispatcher::to_received_order(float* dst, const float* local) const {
  for (size_t i = 0; i < perm_.size(); ++i)
    std::memcpy(dst + perm_[i] * D_, local + int64_t(i) * D_, sizeof(float) * size_t(D_));
}

void EpDispatcher::dispatch_postprocess(std::vector<float>& expert_in, std::vector<int64_t>& local_offsets) {
  expert_in.resize(perm_.size() * size_t(D_));
  to_local_order(expert_in.data(), recv_buf_.data(), false);
  local_offsets = local_offsets_;
}

void EpDispatcher::combine_preprocess(const float* expert_out, const float* weights_by_slot) {
  recv_buf_.resize(perm_.size() * size_t(D_));
  to_received_order(recv_buf_.data(), expert_out);
  const size_t M = plan_->rows.size();
  row_weights_.resize(M);
  for (size_t i = 0; i < M; ++i) row_weights_[i] = weights_by_slot[plan_->slots[i]];
}

void EpDispatcher::combine() {
  returned_.resize(plan_->rows.size() * size_t(D_));
  exchange(recv_buf_.data(), recv_rows_, returned_.data(), send_rows_);
}

void EpDispatcher::combine_postprocess(float* out) {
  ops::scatter_add_rows(out, returned_.data(), plan_->rows.data(), row_weights_.data(), int64_t(plan_->rows.size()),
                        D_);
}

void EpDispatcher::combine_backward(float* dexpert_out, float* dweights_by_slot, const float* dout,
                                    const float* /*expert_out: held here in plan order*/,
                                    const float* weights_by_slot) {
  const size_t M = plan_->rows.size();
  row_weights_.resize(M);
  for (size_t i = 0; i < M; ++i) row_weights_[i] = weights_by_slot[plan_->slots[i]];
  drow_weights_.assign(M, 0.0f);
  send_buf_.assign(M * size_t(D_), 0.0f);
  ops::scatter_add_rows_backward(send_buf_.data(), drow_weights_.data(), dout, returned_.data(), plan_->rows.data(),
                                 row_weights_.data(), int64_t(M), D_);
  for (size_t i = 0; i < M; ++i) dweights_by_slot[plan_->slots[i]] += drow_weights_[i];
  recv_buf_.resize(perm_.size() * size_t(D_));
  exchange(send_buf_.data(), send_rows_, recv_buf_.data(), recv_rows_);
  to_local_order(dexpert_out, recv_buf_.data(), true);
}

void EpDispatcher::dispatch_backward(float* dtokens, const float* dexpert_in) {
  recv_buf_.resize(perm_.size() * size_t(D_));
  to_received_order(recv_buf_.data(), dexpert_in);
  send_buf_.resize(plan_->rows.size() * size_t(D_));
  exchange(recv_buf_.data(), recv_rows_, send_buf_.data(), send_rows_);
  ops::scatter_add_rows(dtokens, send_buf_.data(), plan_->rows.data(), nullptr, int64_t(plan_->rows.size()), D_);
}

}  // namespace moe
