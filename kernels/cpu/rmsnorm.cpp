// RMSNorm: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps).
// Row sums accumulate in double (rstd itself is float) so they barely depend on vector width.
#include <cmath>

#include "kernels/ops.h"

namespace moe::ops {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t D,
                     float eps) {
#pragma omp parallel for schedule(static) if (N * D > (1 << 14))
  for (int64_t i = 0; i < N; ++i) {
    const float* x = inp + i * D;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < D; ++j) ss += static_cast<double>(x[j]) * x[j];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(D) + eps));
    if (rstd) rstd[i] = r;
    float* y = out + i * D;
    for (int64_t j = 0; j < D; ++j) y[j] = x[j] * r * weight[j];
  }
}

// dx_j = r w_j dy_j - x_j r^3 / D * sum_k dy_k w_k x_k;  dw_j = sum_i dy_ij x_ij r_i.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t D) {
  if (dinp) {
#pragma omp parallel for schedule(static) if (N * D > (1 << 14))
    for (int64_t i = 0; i < N; ++i) {
      const float *x = inp + i * D, *dy = dout + i * D;
      const float r = rstd[i];
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < D; ++j) dot += static_cast<double>(dy[j]) * weight[j] * x[j];
      const float c = static_cast<float>(dot * r * r * r / static_cast<double>(D));
      float* dx = dinp + i * D;
      for (int64_t j = 0; j < D; ++j) dx[j] += r * weight[j] * dy[j] - x[j] * c;
    }
  }
  if (dweight) {
    // Threads own column blocks and walk all rows in order: deterministic for any thread count.
    constexpr int64_t kBlock = 64;
    const int64_t nblocks = (D + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * D > (1 << 14))
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t j0 = blk * kBlock, j1 = j0 + kBlock < D ? j0 + kBlock : D;
      float acc[kBlock] = {};
      for (int64_t i = 0; i < N; ++i) {
        const float *x = inp + i * D, *dy = dout + i * D;
        const float r = rstd[i];
        for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dy[j] * x[j] * r;
      }
      for (int64_t j = j0; j < j1; ++j) dweight[j] += acc[j - j0];
    }
  }
}

}  // namespace moe::ops
