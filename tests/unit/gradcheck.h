// Test helpers for ops and layers: seeded random inputs and a central-difference gradient check.
//
//   auto w = moe::test::random_floats(n_out, /*seed=*/7);
//   auto loss = [&] { op_forward(out, x, ...); return moe::test::weighted_sum(out, w.data(), n_out); };
//   op_backward(dx, ..., /*dout=*/w, ...);                  // d loss / d out = w
//   EXPECT_LT(moe::test::max_rel_grad_error(loss, x, dx, n), 1e-2);
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace moe::test {

// Uniform in [lo, hi) from a fixed seed; the same values on every platform that uses mt19937_64.
inline std::vector<float> random_floats(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 gen(seed);
  std::vector<float> out(n);
  for (auto& x : out) x = lo + (hi - lo) * static_cast<float>(static_cast<double>(gen() >> 11) * 0x1.0p-53);
  return out;
}

inline std::vector<int32_t> random_ints(int64_t n, uint64_t seed, int32_t lo, int32_t hi_exclusive) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> out(n);
  for (auto& x : out) x = lo + static_cast<int32_t>(gen() % static_cast<uint64_t>(hi_exclusive - lo));
  return out;
}

// sum_i out[i] * w[i] in double: a scalar loss whose gradient with respect to out is w.
inline double weighted_sum(const float* out, const float* w, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(out[i]) * w[i];
  return s;
}

// max_i |a[i] - b[i]| for comparing a kernel against a reference (float or double).
template <typename A, typename B>
double max_abs_diff(const A* a, const B* b, int64_t n) {
  double m = 0.0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

struct GradCheckResult {
  double max_rel_error = 0.0;  // max over i of |analytic - numeric| / denominator_i (see grad_check)
  int64_t worst_index = -1;
  double analytic = 0.0, numeric = 0.0;  // at worst_index
};

// Central differences on each x[i] (restored afterwards); the step is measured from the rounded
// floats. The forward runs in float, so the loss carries noise of ~1e-7 relative: eps = 1e-2 keeps
// that noise below the truncation error of smooth ops, and the denominator
//   max(|analytic_i|, |numeric_i|, floor_frac * max_j |analytic_j|)
// keeps components far below the gradient's scale from turning that noise into large ratios.
inline GradCheckResult grad_check(const std::function<double()>& loss, float* x, const float* analytic_grad,
                                  int64_t n, float eps = 1e-2f, double floor_frac = 1e-2) {
  double scale = 0.0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<double>(analytic_grad[i])));
  const double abs_floor = std::max(floor_frac * scale, 1e-12);
  GradCheckResult r;
  for (int64_t i = 0; i < n; ++i) {
    const float orig = x[i];
    const float xp = orig + eps, xm = orig - eps;
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = orig;
    const double numeric = (lp - lm) / (static_cast<double>(xp) - static_cast<double>(xm));
    const double a = analytic_grad[i];
    const double denom = std::max({std::fabs(a), std::fabs(numeric), abs_floor});
    const double err = std::fabs(a - numeric) / denom;
    if (err > r.max_rel_error || r.worst_index < 0) r = {err, i, a, numeric};
  }
  loss();  // leave the outputs as computed at the unperturbed x
  return r;
}

// For failure messages: EXPECT_LT(r.max_rel_error, 1e-2) << describe(r);
inline std::string describe(const GradCheckResult& r) {
  return "worst at index " + std::to_string(r.worst_index) + ": analytic " + std::to_string(r.analytic) +
         ", numeric " + std::to_string(r.numeric);
}

inline double max_rel_grad_error(const std::function<double()>& loss, float* x, const float* analytic_grad,
                                 int64_t n, float eps = 1e-2f, double floor_frac = 1e-2) {
  return grad_check(loss, x, analytic_grad, n, eps, floor_frac).max_rel_error;
}

}  // namespace moe::test
