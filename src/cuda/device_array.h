// An owning device allocation (cudaMalloc), resized explicitly; zero() is stream-ordered.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace moe::gpu {

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(int64_t n) { resize(n); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceArray() {
    if (p_) cudaFree(p_);
  }
  void resize(int64_t n) {
    if (n == n_) return;
    if (p_) MOE_CUDA_CHECK(cudaFree(p_));
    p_ = nullptr;
    n_ = n;
    if (n > 0) MOE_CUDA_CHECK(cudaMalloc(&p_, sizeof(T) * size_t(n)));
  }
  void zero(cudaStream_t s) {
    if (n_ > 0) MOE_CUDA_CHECK(cudaMemsetAsync(p_, 0, sizeof(T) * size_t(n_), s));
  }
  void zero(cudaStream_t s, int64_t n) {  // the first n elements
    MOE_CUDA_REQUIRE(n >= 0 && n <= n_, "DeviceArray::zero: " + std::to_string(n) + " elements of " + std::to_string(n_));
    if (n > 0) MOE_CUDA_CHECK(cudaMemsetAsync(p_, 0, sizeof(T) * size_t(n), s));
  }
  T* get() const { return p_; }
  int64_t size() const { return n_; }
  int64_t bytes() const { return n_ * int64_t(sizeof(T)); }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace moe::gpu
