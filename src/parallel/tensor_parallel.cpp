#include "src/parallel/tensor_parallel.h"

#include "kernels/ops.h"

namespace moe {

void tp_allreduce(comm::Communicator* tp, float* x, int64_t n) {
  if (tp && tp->size() > 1) tp->allreduce_sum(x, n);
}

void column_linear_forward(float* out, const float* x, const float* w, int64_t N, int64_t I, int64_t O_local) {
  ops::matmul_forward(out, x, w, N, I, O_local);
}

void column_linear_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, int64_t N,
                            int64_t I, int64_t O_local) {
  ops::matmul_backward(dx, dw, dout, x, w, N, I, O_local);
}

void row_linear_forward(float* out, std::vector<float>& partial, const float* x, const float* w, int64_t N,
                        int64_t I_local, int64_t O, comm::Communicator* tp) {
  if (!tp || tp->size() == 1) {
    ops::matmul_forward(out, x, w, N, I_local, O, /*accumulate=*/true);
    return;
  }
  // Reduce the partial product alone: out may hold a replicated residual that must not be summed.
  partial.resize(size_t(N * O));
  ops::matmul_forward(partial.data(), x, w, N, I_local, O);
  tp->allreduce_sum(partial.data(), N * O);
  for (int64_t i = 0; i < N * O; ++i) out[i] += partial[size_t(i)];
}

void row_linear_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, int64_t N,
                         int64_t I_local, int64_t O) {
  ops::matmul_backward(dx, dw, dout, x, w, N, I_local, O);
}

double split_grad_sq_sum(const ParamTable& table, const float* grads, const std::string& group,
                         const std::function<bool(size_t)>& counts) {
  double s = 0;
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size(); ++i)
    if (ps[i].shard.split_dim >= 0 && ps[i].shard.group == group && counts(i))
      s += ops::sum_squares(grads + ps[i].offset, ps[i].numel);
  return s;
}

void scale_expert_grads(const ParamTable& table, float* grads, float scale) {
  for (const auto& p : table.params())
    if (p.shard.expert) ops::scale_inplace(grads + p.offset, scale, p.numel);
}

}  // namespace moe
