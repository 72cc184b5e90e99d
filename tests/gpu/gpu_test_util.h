// Helpers for the GPU-vs-CPU op tests: device buffers, bf16 rounding, and a scale-relative error.
//
//   MOE_REQUIRE_GPU();                               // GTEST_SKIP()s without a device
//   auto x = random_floats(n, 1);
//   Dev<float> dx(x);  ...  cuda::op(dx.ptr, ..., stream());  EXPECT_LT(rel_err(dx.host(), ref), 1e-5);
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"
#include "tests/unit/gradcheck.h"

#define MOE_REQUIRE_GPU()                                                                \
  do {                                                                                   \
    if (::moe::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU test skipped"; \
  } while (0)

namespace moe::gpu_test {

using test::random_floats;
using test::random_ints;
using bf16 = __nv_bfloat16;

// The default stream; tests synchronise before reading results back.
inline cudaStream_t stream() { return cudaStream_t{}; }

// A device copy of a host vector (or n zeroed elements), freed on scope exit.
template <typename T>
struct Dev {
  T* ptr = nullptr;
  int64_t n = 0;
  explicit Dev(int64_t count) : n(count) {
    MOE_CUDA_CHECK(cudaMalloc(&ptr, sizeof(T) * std::max<int64_t>(n, 1)));
    MOE_CUDA_CHECK(cudaMemset(ptr, 0, sizeof(T) * std::max<int64_t>(n, 1)));
  }
  explicit Dev(const std::vector<T>& h) : Dev(static_cast<int64_t>(h.size())) {
    MOE_CUDA_CHECK(cudaMemcpy(ptr, h.data(), sizeof(T) * n, cudaMemcpyHostToDevice));
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  ~Dev() { cudaFree(ptr); }
  std::vector<T> host() const {
    MOE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h(static_cast<size_t>(n));
    MOE_CUDA_CHECK(cudaMemcpy(h.data(), ptr, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return h;
  }
};

inline std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = __float2bfloat16_rn(x[i]);
  return y;
}
inline std::vector<float> to_float(const std::vector<bf16>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = __bfloat162float(x[i]);
  return y;
}
// x rounded to bf16 and back: the CPU reference sees exactly the bf16 inputs.
inline std::vector<float> bf16_round(const std::vector<float>& x) { return to_float(to_bf16(x)); }

// Bit-for-bit comparisons: same_bits for any element type, bits() for bf16 vectors in EXPECT_EQ
// (the raw 16-bit patterns, which gtest can print).
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0;
}
inline std::vector<uint16_t> bits(const std::vector<bf16>& x) {
  std::vector<uint16_t> y(x.size());
  std::memcpy(y.data(), x.data(), sizeof(uint16_t) * x.size());
  return y;
}

// max_i |got_i - want_i| / max_i |want_i|: the error relative to the reference's scale, so that
// elements near zero do not turn rounding noise into large ratios.
inline double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) return INFINITY;
    diff = std::max(diff, std::fabs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / std::max(scale, 1e-30);
}

constexpr double kTolF32 = 2e-5;
constexpr double kTolBf16 = 1.5e-2;

}  // namespace moe::gpu_test
