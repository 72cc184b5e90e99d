// OpenBLAS (pthread build) keeps its own thread pool: a GEMM called inside an OpenMP parallel
// region would start that pool's threads on top of OpenMP's. Kernels that run one GEMM per
// OpenMP task hold this guard around the region, so each task's GEMM runs on its own thread.
#pragma once
#include <cblas.h>

namespace moe::ops::cpu {

// `active` false (a region that runs on one thread anyway) leaves OpenBLAS's threads alone, so
// the GEMMs of a serial loop still use them.
class BlasSingleThreaded {
 public:
  explicit BlasSingleThreaded(bool active) : prev_(active ? openblas_get_num_threads() : 1) {
    if (prev_ != 1) openblas_set_num_threads(1);
  }
  ~BlasSingleThreaded() {
    if (prev_ != 1) openblas_set_num_threads(prev_);
  }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int prev_;
};

}  // namespace moe::ops::cpu
