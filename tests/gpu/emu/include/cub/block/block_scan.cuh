// Emulation stand-in for cub::BlockScan: ExclusiveSum over the block's items (blocked
// arrangement) with the block aggregate, by a plain sum over a shared array.
#pragma once
#include "emu_runtime.h"

namespace cub {
template <typename T, int kThreadsPerBlock>
struct BlockScan {
  struct TempStorage {
    T v[kThreadsPerBlock * 8];
  };
  TempStorage& s;
  explicit BlockScan(TempStorage& storage) : s(storage) {}
  template <int kItems>
  void ExclusiveSum(T (&in)[kItems], T (&out)[kItems], T& aggregate) {
    static_assert(kItems <= 8, "TempStorage holds 8 items per thread");
    const int t = static_cast<int>(threadIdx.x);
    for (int j = 0; j < kItems; ++j) s.v[t * kItems + j] = in[j];
    __syncthreads();
    T run = 0;
    for (int q = 0; q < t * kItems; ++q) run += s.v[q];
    for (int j = 0; j < kItems; ++j) {
      out[j] = run;
      run += in[j];
    }
    aggregate = 0;
    for (int q = 0; q < kThreadsPerBlock * kItems; ++q) aggregate += s.v[q];
    __syncthreads();
  }
};
}  // namespace cub
