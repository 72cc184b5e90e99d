// Megatron tensor parallelism (docs/distributed.md, "Tensor parallelism"). A column-parallel
// linear holds a slice of the output rows (q/k/v heads, w1/w3 hidden units) and reads the full,
// replicated input; a row-parallel linear holds the matching slice of the input columns (wo, w2)
// and produces a partial sum of the full output. The two conjugate communications:
//   f (before column-parallel): identity forward, all-reduce of the input gradient backward;
//   g (after row-parallel):     all-reduce of the output forward, identity backward.
// A null communicator or one of size 1 makes every call here the plain unsplit layer.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/comm/communicator.h"
#include "src/model/params.h"

namespace moe {

// In-place sum over the tp group (no-op without one): f's backward and g's forward.
void tp_allreduce(comm::Communicator* tp, float* x, int64_t n);

// out (N, O_local) = x (N, I) @ w_local^T; w_local (O_local, I) is this rank's rows.
void column_linear_forward(float* out, const float* x, const float* w, int64_t N, int64_t I, int64_t O_local);
// dx (N, I) += dout @ w_local (this rank's partial); dw += dout^T x. The caller applies f's
// backward (tp_allreduce of dx) once, after every column-parallel linear that reads x.
void column_linear_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, int64_t N,
                            int64_t I, int64_t O_local);

// out (N, O) += sum over tp of x_local (N, I_local) @ w_local^T; w_local (O, I_local) is this
// rank's columns. `partial` is scratch (resized here) used only when tp > 1, so the unsplit path
// accumulates straight into out as before.
void row_linear_forward(float* out, std::vector<float>& partial, const float* x, const float* w, int64_t N,
                        int64_t I_local, int64_t O, comm::Communicator* tp);
// dx_local (N, I_local) += dout @ w_local; dw += dout^T x_local (g's backward is the identity).
void row_linear_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, int64_t N,
                         int64_t I_local, int64_t O);

// Sum of squared gradients of the tensors split over `group` ("tp", "ep") for which counts(i)
// holds; each rank sums its slice, the caller reduces over that group.
double split_grad_sq_sum(const ParamTable& table, const float* grads, const std::string& group,
                         const std::function<bool(size_t)>& counts);
// Routed-expert gradients under tp > 1: every tp rank routes the same tokens, so the experts see
// each token tp times and their reduced gradient is tp times the true one. Multiplies by `scale`.
void scale_expert_grads(const ParamTable& table, float* grads, float scale);

}  // namespace moe
