// invert_permutation and combine_rows (declared in combine.cuh).
//
// combine_rows: threads work in groups of `lanes` (a power of two <= 32, so a group never
// straddles a warp), one token row per group, as in gather_scatter.cu. A lane owns W consecutive
// elements of the row at a time: W = 16 / sizeof(T) (one 16-byte load of each of the K input rows,
// the fp32 output as W / 4 float4) when D % W == 0 and both buffers are 16-byte aligned, else
// W = 1. It keeps the W sums in registers over k = 0..K-1 (the loads of up to kBatch rows issued
// before their sums) and stores them once, so every output element has exactly one writer and a
// fixed summation order.
#include <cstdint>
#include <string>

#include "kernels/cuda/combine.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kBatch = 4;  // combine: input rows loaded together

// W fp32 values from p: one scalar, or W / 4 float4 (p 16-byte aligned).
template <int W>
__device__ __forceinline__ void load_w(const float* p, float (&v)[W]) {
  if constexpr (W == 1) {
    v[0] = *p;
  } else {
#pragma unroll
    for (int q = 0; q < W; q += 4) {
      const float4 u = *reinterpret_cast<const float4*>(p + q);
      v[q] = u.x, v[q + 1] = u.y, v[q + 2] = u.z, v[q + 3] = u.w;
    }
  }
}
// W bf16 values from p as fp32 (exact: the bits shifted up): one scalar, or W / 8 uint4.
template <int W>
__device__ __forceinline__ void load_w(const bf16* p, float (&v)[W]) {
  if constexpr (W == 1) {
    v[0] = to_float(*p);
  } else {
#pragma unroll
    for (int q = 0; q < W; q += 8) {
      const uint4 u = *reinterpret_cast<const uint4*>(p + q);
      const unsigned pairs[4] = {u.x, u.y, u.z, u.w};  // element 2h in the low half (lower address)
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        v[q + 2 * h] = __uint_as_float(pairs[h] << 16);
        v[q + 2 * h + 1] = __uint_as_float(pairs[h] & 0xffff0000u);
      }
    }
  }
}
template <int W>
__device__ __forceinline__ void store_w(float* p, const float (&v)[W]) {
  if constexpr (W == 1) {
    *p = v[0];
  } else {
#pragma unroll
    for (int q = 0; q < W; q += 4)
      *reinterpret_cast<float4*>(p + q) = make_float4(v[q], v[q + 1], v[q + 2], v[q + 3]);
  }
}

__global__ void invert_kernel(int32_t* inv, const int32_t* perm, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t p = perm[i];
    if (p >= 0) inv[p] = static_cast<int32_t>(i);
  }
}

template <typename T, int W>
__global__ void combine_kernel(float* out, const float* start, const T* __restrict__ inp,
                               const int32_t* __restrict__ slot_row, const float* __restrict__ weights, int64_t N,
                               int64_t K, int64_t D, int lanes_log2) {
  const int lanes = 1 << lanes_log2, sub = threadIdx.x & (lanes - 1);
  const int64_t per_block = kThreads >> lanes_log2;
  for (int64_t t = blockIdx.x * per_block + (threadIdx.x >> lanes_log2); t < N; t += gridDim.x * per_block) {
    const int32_t* rows = slot_row + t * K;
    const float* w = weights ? weights + t * K : nullptr;
    float* dst = out + t * D;
    const float* from = start ? start + t * D : nullptr;  // (may be dst: each element is read, then written)
    for (int64_t j = int64_t(sub) * W; j < D; j += int64_t(lanes) * W) {
      float acc[W];
      if (from) {
        load_w<W>(from + j, acc);
      } else {
#pragma unroll
        for (int q = 0; q < W; ++q) acc[q] = 0.0f;
      }
      // Up to kBatch rows' loads in flight before their sums, which still go in k order.
      for (int64_t k0 = 0; k0 < K; k0 += kBatch) {
        float v[kBatch][W], wk[kBatch];
        bool use[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          const int64_t r = k0 + b < K ? rows[k0 + b] : -1;
          use[b] = r >= 0;
          wk[b] = use[b] && w ? w[k0 + b] : 1.0f;
          if (use[b]) load_w<W>(inp + r * D + j, v[b]);
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          if (!use[b]) continue;
#pragma unroll
          for (int q = 0; q < W; ++q) acc[q] = fmaf(wk[b], v[b][q], acc[q]);  // fused: no contraction choice left
        }
      }
      store_w<W>(dst + j, acc);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// log2 of the smallest power of two >= units, at most 5 (a warp).
int lanes_log2_for(int64_t units) {
  int l = 0;
  while (l < 5 && (int64_t(1) << l) < units) ++l;
  return l;
}

template <typename T, int W>
void launch_combine(float* out, const float* start, const T* inp, const int32_t* slot_row, const float* weights,
                    int64_t N, int64_t K, int64_t D, cudaStream_t stream) {
  const int l = lanes_log2_for(D / W);
  combine_kernel<T, W><<<grid_for(N, kThreads >> l), kThreads, 0, stream>>>(out, start, inp, slot_row, weights, N, K,
                                                                             D, l);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void combine(float* out, const float* start, const T* inp, const int32_t* slot_row, const float* weights, int64_t N,
             int64_t K, int64_t D, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(N >= 0 && K >= 1 && D >= 0, "combine_rows: N " + std::to_string(N) + ", K " + std::to_string(K) +
                                                   ", D " + std::to_string(D));
  if (N == 0 || D == 0) return;
  constexpr int kVec = 16 / int(sizeof(T));
  if (D % kVec == 0 && aligned16(out) && aligned16(inp) && (!start || aligned16(start)))
    launch_combine<T, kVec>(out, start, inp, slot_row, weights, N, K, D, stream);
  else launch_combine<T, 1>(out, start, inp, slot_row, weights, N, K, D, stream);
}

}  // namespace

void invert_permutation(int32_t* inv, const int32_t* perm, int64_t M, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(M >= 0 && M <= INT32_MAX, "invert_permutation: M = " + std::to_string(M));
  if (M == 0) return;
  invert_kernel<<<grid_for(M, kThreads), kThreads, 0, stream>>>(inv, perm, M);
  MOE_CUDA_CHECK_LAUNCH();
}

void combine_rows(float* out, const float* start, const float* inp, const int32_t* slot_row, const float* weights,
                  int64_t N, int64_t K, int64_t D, cudaStream_t stream) {
  combine(out, start, inp, slot_row, weights, N, K, D, stream);
}
void combine_rows(float* out, const float* start, const bf16* inp, const int32_t* slot_row, const float* weights,
                  int64_t N, int64_t K, int64_t D, cudaStream_t stream) {
  combine(out, start, inp, slot_row, weights, N, K, D, stream);
}

}  // namespace moe::cuda
