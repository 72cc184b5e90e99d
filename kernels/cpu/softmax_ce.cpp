// Row softmax and token cross-entropy. Max subtraction keeps exp in range; exp is float
// (cpu::fast_exp) and the row sums accumulate in double (vocabularies reach 1e5 entries).
#include <cmath>
#include <string>

#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

inline float row_max(const float* x, int64_t n) {
  float mx = x[0];
  for (int64_t j = 1; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  return mx;
}

// log(sum_j exp(x_j)) computed as max + log(sum exp(x - max)).
inline float row_logsumexp(const float* x, int64_t n) {
  const float mx = row_max(x, n);
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += cpu::fast_exp(x[j] - mx);
  return mx + static_cast<float>(std::log(sum));
}

void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i)
    MOE_CHECK(targets[i] >= 0 && targets[i] < V, "cross_entropy: target " + std::to_string(targets[i]) +
                                                     " at row " + std::to_string(i) + " outside [0, " +
                                                     std::to_string(V) + ")");
}

}  // namespace

void softmax_forward(float* probs, const float* logits, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 14))
  for (int64_t i = 0; i < N; ++i) {
    const float* x = logits + i * C;
    float* p = probs + i * C;
    const float mx = row_max(x, C);
    double sum = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      p[j] = cpu::fast_exp(x[j] - mx);
      sum += p[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < C; ++j) p[j] *= inv;
  }
}

void softmax_backward(float* dlogits, const float* dprobs, const float* probs, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 14))
  for (int64_t i = 0; i < N; ++i) {
    const float *p = probs + i * C, *dp = dprobs + i * C;
    double pdp = 0.0;
#pragma omp simd reduction(+ : pdp)
    for (int64_t j = 0; j < C; ++j) pdp += static_cast<double>(p[j]) * dp[j];
    const float s = static_cast<float>(pdp);
    float* dl = dlogits + i * C;
    for (int64_t j = 0; j < C; ++j) dl[j] += p[j] * (dp[j] - s);
  }
}

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V) {
  check_targets(targets, N, V);
#pragma omp parallel for schedule(static) if (N * V > (1 << 14))
  for (int64_t i = 0; i < N; ++i) {
    const float* x = logits + i * V;
    const float l = row_logsumexp(x, V);
    if (lse) lse[i] = l;
    losses[i] = l - x[targets[i]];
  }
}

void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V) {
  check_targets(targets, N, V);
#pragma omp parallel for schedule(static) if (N * V > (1 << 14))
  for (int64_t i = 0; i < N; ++i) {
    const float* x = logits + i * V;
    const float l = lse ? lse[i] : row_logsumexp(x, V);
    const float d = dlosses[i];
    float* dl = dlogits + i * V;
    for (int64_t j = 0; j < V; ++j) dl[j] += d * cpu::fast_exp(x[j] - l);
    dl[targets[i]] -= d;
  }
}

}  // namespace moe::ops
