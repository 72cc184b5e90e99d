// Warp-level top-k selection shared by topk_forward and the fused router (internal, device code).
// The order is (value descending, index ascending); after picking (v*, i*), the next pick is the
// best element strictly after it in that order, so no per-element "taken" flags are needed.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace moe::cuda {

struct Pick {
  float val;
  int32_t idx;
  float aux;  // a value carried along with the pick (the router's unbiased probability)
};

__device__ __forceinline__ bool before(float v, int32_t i, float bv, int32_t bi) {
  return v > bv || (v == bv && i < bi);
}

__device__ __forceinline__ Pick warp_best(Pick p) {
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, p.val, o);
    const int32_t i = __shfl_xor_sync(0xffffffffu, p.idx, o);
    const float a = __shfl_xor_sync(0xffffffffu, p.aux, o);
    if (before(v, i, p.val, p.idx)) p = {v, i, a};
  }
  return p;
}

// The next pick of the warp among x[0..C) after `prev` (prev.idx < 0: none yet); aux(j) is carried.
template <typename Aux>
__device__ __forceinline__ Pick warp_next_pick(const float* x, int64_t C, Pick prev, Aux aux) {
  Pick best{-INFINITY, INT32_MAX, 0.0f};
  for (int64_t j = threadIdx.x & 31; j < C; j += 32) {
    const float v = x[j];
    const int32_t i = static_cast<int32_t>(j);
    if (prev.idx >= 0 && !before(prev.val, prev.idx, v, i)) continue;  // at or before prev: taken
    if (before(v, i, best.val, best.idx)) best = {v, i, aux(j)};
  }
  return warp_best(best);
}

}  // namespace moe::cuda
