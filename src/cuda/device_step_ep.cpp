// Expert parallelism in the device step: the token rows of each MoE layer exchanged with the ep
// peers (all-to-all of the counts, all-to-all-v of the rows), forward and backward.
#include <limits>

#include "src/cuda/device_step_impl.h"

namespace moe::gpu::step {

template <typename T>
void StepImpl<T>::ep_exchange(const T* send, const std::vector<int64_t>& send_rows, T* recv,
                              const std::vector<int64_t>& recv_rows) {
  const int64_t row_bytes = d.D * int64_t(sizeof(T));
  std::vector<int64_t> sb(send_rows.size()), rb(recv_rows.size());
  for (size_t r = 0; r < sb.size(); ++r) {
    sb[r] = send_rows[r] * row_bytes;
    rb[r] = recv_rows[r] * row_bytes;
  }
  ep->alltoallv(send, sb.data(), recv, rb.data());
  for (size_t r = 0; r < sb.size(); ++r) ep_sent[r] += sb[r];
}

// Received rows arrive source-major (peer 0's rows for local experts 0, 1, ..., then peer 1's);
// the local layout is expert-major (expert 0's rows from peer 0, 1, ..., then expert 1's), compact
// or blocked like the single-rank layout. local_src and recv_local map between the two.
template <typename T>
void StepImpl<T>::ep_layout(FfnActs<T>& f, const std::vector<int64_t>& recv_counts) {
  const int64_t P = ep->size(), El = d.E / P;
  std::vector<int64_t> base(size_t(P * El));  // first received row of (peer, local expert)
  int64_t received = 0;
  for (int64_t r = 0; r < P; ++r)
    for (int64_t e = 0; e < El; ++e) {
      base[size_t(r * El + e)] = received;
      received += recv_counts[size_t(r * El + e)];
    }
  f.received = received;
  f.experts = El;
  f.offs.assign(size_t(El + 1), 0);
  for (int64_t e = 0; e < El; ++e) {
    int64_t n = 0;
    for (int64_t r = 0; r < P; ++r) n += recv_counts[size_t(r * El + e)];
    f.offs[size_t(e + 1)] = f.offs[size_t(e)] + n;
  }
  const double pad = c.train.gpu_expert_padding;
  f.blocks = expert_blocks(f.offs.data(), El, expert_buffer_rows(received, pad), pad);
  f.used_rows = f.blocks.block ? f.blocks.rows() : received;
  const std::vector<int64_t>& start = f.blocks.block ? f.blocks.start : f.offs;
  std::vector<int32_t> local_src(static_cast<size_t>(f.used_rows), -1), recv_local(static_cast<size_t>(received));
  for (int64_t e = 0; e < El; ++e) {
    int64_t row = start[size_t(e)];
    for (int64_t r = 0; r < P; ++r)
      for (int64_t k = 0; k < recv_counts[size_t(r * El + e)]; ++k, ++row) {
        const int64_t src = base[size_t(r * El + e)] + k;
        local_src[size_t(row)] = int32_t(src);
        recv_local[size_t(src)] = int32_t(row);
      }
  }
  ensure_size(f.local_src, f.used_rows);
  ensure_size(f.recv_local, received);
  MOE_CUDA_CHECK(cudaMemcpyAsync(f.local_src.get(), local_src.data(), sizeof(int32_t) * local_src.size(),
                                 cudaMemcpyHostToDevice, s));
  MOE_CUDA_CHECK(cudaMemcpyAsync(f.recv_local.get(), recv_local.data(), sizeof(int32_t) * recv_local.size(),
                                 cudaMemcpyHostToDevice, s));
}

template <typename T>
void StepImpl<T>::ep_experts_forward(FfnActs<T>& f, const BlockParams& p) {
  const int64_t N = d.N, D = d.D, E = d.E, K = d.K, M = N * K, Fe = d.Fe, P = ep->size(), El = E / P;
  // This rank's rows stay in compact order: peer r's experts' rows are contiguous.
  invert_permutation(f.slot_row.get(), f.slots.get(), M, s);
  gather_rows(f.sorted_weights.get(), f.weights.get(), f.slots.get(), M, 1, s);
  ensure_size(ep_send_, M * D);
  gather_rows(ep_send_.get(), f.xn(), f.rows.get(), M, D, s);
  // Rows per (peer, the peer's local expert), both ways: all-to-all of the counts (device memory,
  // as NCCL wants it), then the rows by all-to-all-v.
  const std::vector<int64_t> global_offs = f.offs;
  std::vector<int64_t> counts(size_t(2 * P * El));
  for (int64_t e = 0; e < E; ++e) counts[size_t(e)] = global_offs[size_t(e + 1)] - global_offs[size_t(e)];
  ensure_size(ep_counts_, 2 * P * El);
  MOE_CUDA_CHECK(cudaMemcpyAsync(ep_counts_.get(), counts.data(), sizeof(int64_t) * P * El, cudaMemcpyHostToDevice, s));
  ep->alltoall(ep_counts_.get(), ep_counts_.get() + P * El, int64_t(sizeof(int64_t)) * El);
  MOE_CUDA_CHECK(cudaMemcpyAsync(counts.data() + P * El, ep_counts_.get() + P * El, sizeof(int64_t) * P * El,
                                 cudaMemcpyDeviceToHost, s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<int64_t> recv_counts(counts.begin() + P * El, counts.end());
  f.send_rows.assign(size_t(P), 0);
  f.recv_rows.assign(size_t(P), 0);
  for (int64_t r = 0; r < P; ++r)
    for (int64_t e = 0; e < El; ++e) {
      f.send_rows[size_t(r)] += counts[size_t(r * El + e)];
      f.recv_rows[size_t(r)] += recv_counts[size_t(r * El + e)];
    }
  ep_layout(f, recv_counts);
  const int64_t R = f.used_rows, Mr = f.received;
  if (!recomputing_) {
    row_use.routed += Mr;
    row_use.computed += R;
    row_use.blocked_layers += f.blocks.block ? 1 : 0;
    row_use.one_block_rows += expert_blocks(f.offs.data(), El, std::numeric_limits<int64_t>::max(), 1.0).rows();
  }
  ensure_size(ep_recv_, Mr * D);
  ep_exchange(ep_send_.get(), f.send_rows, ep_recv_.get(), f.recv_rows);
  for (auto* a : {&f.xe, &f.ye}) ensure_size(*a, R * D);
  for (auto* a : {&f.h1, &f.h3, &f.act}) ensure_size(*a, R * Fe);
  gather_rows(f.xe.get(), ep_recv_.get(), f.local_src.get(), R, D, s);
  expert_forward(f.h1.get(), f.xe.get(), pc(p.experts_w1), f, D, Fe);
  expert_forward(f.h3.get(), f.xe.get(), pc(p.experts_w3), f, D, Fe);
  swiglu_forward(f.act.get(), f.h1.get(), f.h3.get(), R * Fe, s);
  expert_forward(f.ye.get(), f.act.get(), pc(p.experts_w2), f, Fe, D);
  // The outputs back to their tokens' ranks, in the order they were sent.
  gather_rows(ep_recv_.get(), f.ye.get(), f.recv_local.get(), Mr, D, s);
  ensure_size(f.ys, M * D);
  ep_exchange(ep_recv_.get(), f.recv_rows, f.ys.get(), f.send_rows);
}

template <typename T>
void StepImpl<T>::ep_experts_backward(FfnActs<T>& f, const BlockParams& p, const BlockParams& g) {
  const int64_t N = d.N, D = d.D, K = d.K, M = N * K, Fe = d.Fe, R = f.used_rows, Mr = f.received;
  // d(ys) and the combine weights' gradient on this rank, then d(ys) to the experts' ranks.
  ep_send_.zero(s, M * D);
  dws_.zero(s, M);
  scatter_add_rows_backward(ep_send_.get(), dws_.get(), dx_.get(), f.ys.get(), f.rows.get(), f.sorted_weights.get(), M,
                            D, s);
  ep_exchange(ep_send_.get(), f.send_rows, ep_recv_.get(), f.recv_rows);
  ensure_size(dxe_, R * D);
  for (auto* a : {&dh1_, &dh3_, &dact_}) ensure_size(*a, R * Fe);
  gather_rows(dxe_.get(), ep_recv_.get(), f.local_src.get(), R, D, s);  // d(ye) in the local layout
  experts_backward(f, p, g);
  // d(xe) back to the tokens' ranks, then un-permuted (the first writer of dxn32).
  gather_rows(ep_recv_.get(), dxe_.get(), f.recv_local.get(), Mr, D, s);
  ep_exchange(ep_recv_.get(), f.recv_rows, ep_send_.get(), f.send_rows);
  combine_rows(dxn32_.get(), nullptr, ep_send_.get(), f.slot_row.get(), nullptr, N, K, D, s);
}

template void StepImpl<float>::ep_exchange(const float*, const std::vector<int64_t>&, float*,
                                           const std::vector<int64_t>&);
template void StepImpl<bf16>::ep_exchange(const bf16*, const std::vector<int64_t>&, bf16*, const std::vector<int64_t>&);
template void StepImpl<float>::ep_layout(FfnActs<float>&, const std::vector<int64_t>&);
template void StepImpl<bf16>::ep_layout(FfnActs<bf16>&, const std::vector<int64_t>&);
template void StepImpl<float>::ep_experts_forward(FfnActs<float>&, const BlockParams&);
template void StepImpl<bf16>::ep_experts_forward(FfnActs<bf16>&, const BlockParams&);
template void StepImpl<float>::ep_experts_backward(FfnActs<float>&, const BlockParams&, const BlockParams&);
template void StepImpl<bf16>::ep_experts_backward(FfnActs<bf16>&, const BlockParams&, const BlockParams&);

}  // namespace moe::gpu::step
