// AdamW (decoupled weight decay) and the double-precision sum of squares for gradient norms.
// Compiled with -fno-math-errno (CMakeLists.txt): sqrt then vectorises to vsqrtps, correctly
// rounded as before (the same value; v is never negative); with errno the scalar sqrt and its
// branch kept the AdamW loops scalar and compute bound (bench_ops BM_AdamwBf16Copy).
#include <cmath>
#include <vector>

#include "kernels/cpu/half.h"
#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t step) {
  MOE_CHECK(step >= 1, "adamw_update: step counts from 1");
  // Bias corrections in double: beta^step underflows gracefully and 1 - beta^step keeps its digits.
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    const float mhat = m[i] / bc1, vhat = v[i] / bc2;
    param[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * param[i]);
  }
}

// Chunks of 4096 floats (16 KiB per stream): the rounding of a chunk into the compute copy reads
// the parameters while they are still in L1/L2, so param, grad, m and v cross memory once. The
// arithmetic is adamw_update's, expression for expression, so the bits match it (tested).
void adamw_update_fused(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, int64_t step, float grad_scale, float* copy,
                        Precision copy_precision) {
  MOE_CHECK(step >= 1, "adamw_update: step counts from 1");
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
  constexpr int64_t kChunk = 1 << 12;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = i0 + kChunk < n ? i0 + kChunk : n;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const float g = grad[i] * grad_scale;
      m[i] = beta1 * m[i] + (1.0f - beta1) * g;
      v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
      const float mhat = m[i] / bc1, vhat = v[i] / bc2;
      param[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * param[i]);
    }
    if (copy) half::round_to(copy + i0, param + i0, i1 - i0, copy_precision);
  }
}

// Fixed-size blocks summed in block order: the same bits for any thread count.
double sum_squares(const float* x, int64_t n) {
  constexpr int64_t kBlock = 1 << 14;
  const int64_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(nblocks, 0.0);
#pragma omp parallel for schedule(static) if (nblocks > 1)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t i0 = blk * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = i0; i < i1; ++i) s += static_cast<double>(x[i]) * x[i];
    partial[blk] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace moe::ops
