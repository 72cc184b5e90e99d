// Row gather, weighted scatter-add and its backward (declared in routing.cuh).
//
// Threads work in groups of `lanes` (a power of two <= 32, so a group never straddles a warp),
// one row per group; a 256-thread block covers 256 / lanes rows at a time. lanes is the smallest
// power of two >= the row's units (capped at 32), so short rows do not idle a warp.
// - gather copies bytes: the unit is the widest of 16/8/4/2 bytes that divides the row and both
//   pointers' alignment (uint4 loads and stores for D * sizeof(T) % 16 == 0 and aligned buffers).
// - scatter-add and its backward take 4 elements at a time (float4 of fp32, 8 bytes of bf16) when
//   D % 4 == 0 and the buffers are aligned to that, with sm_90's float4 atomicAdd into the fp32
//   destination; else one element at a time.
// A row index < 0 marks a padding row: gather writes zeros, scatter-add skips it, the backward
// leaves dinp[i] and dweights[i] untouched.
#include <cstdint>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/routing.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

// 4 consecutive elements as fp32: bf16 -> fp32 is exact (the bits shifted up).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const bf16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
  return unsigned(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (unsigned(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}
__device__ __forceinline__ void store4(bf16* p, float4 v) {
  *reinterpret_cast<uint2*>(p) = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
}
__device__ __forceinline__ void atomic_add4(float* p, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  atomicAdd(p, v.x);
  atomicAdd(p + 1, v.y);
  atomicAdd(p + 2, v.z);
  atomicAdd(p + 3, v.w);
#else
  atomicAdd(reinterpret_cast<float4*>(p), v);  // sm_90: one vector atomic (per-element atomicity)
#endif
}

// out[i] = inp[rows[i]] in units of U; zeros for rows[i] < 0. Each lane loads up to 4 units
// before it stores them, so 4 loads per lane are in flight.
template <typename U>
__global__ void gather_kernel(U* __restrict__ out, const U* __restrict__ inp, const int32_t* rows, int64_t M,
                              int64_t units, int lanes_log2) {
  constexpr int kBatch = 4;
  const int lanes = 1 << lanes_log2, sub = threadIdx.x & (lanes - 1);
  const int64_t per_block = kThreads >> lanes_log2;
  for (int64_t i = blockIdx.x * per_block + (threadIdx.x >> lanes_log2); i < M; i += gridDim.x * per_block) {
    const int64_t r = rows[i];
    U* dst = out + i * units;
    if (r < 0) {
      for (int64_t j = sub; j < units; j += lanes) dst[j] = U{};
      continue;
    }
    const U* src = inp + r * units;
    for (int64_t j0 = sub; j0 < units; j0 += int64_t(kBatch) * lanes) {
      U v[kBatch];
#pragma unroll
      for (int q = 0; q < kBatch; ++q)
        if (j0 + q * lanes < units) v[q] = src[j0 + q * lanes];
#pragma unroll
      for (int q = 0; q < kBatch; ++q)
        if (j0 + q * lanes < units) dst[j0 + q * lanes] = v[q];
    }
  }
}

// out[rows[i]] += w[i] * inp[i], W elements per step (W = 4 needs D % 4 == 0 and aligned rows).
template <typename T, int W>
__global__ void scatter_add_kernel(float* out, const T* inp, const int32_t* rows, const float* weights, int64_t M,
                                   int64_t D, int lanes_log2) {
  const int lanes = 1 << lanes_log2, sub = threadIdx.x & (lanes - 1);
  const int64_t per_block = kThreads >> lanes_log2;
  for (int64_t i = blockIdx.x * per_block + (threadIdx.x >> lanes_log2); i < M; i += gridDim.x * per_block) {
    const int64_t r = rows[i];
    if (r < 0) continue;
    const float w = weights ? weights[i] : 1.0f;
    float* dst = out + r * D;
    const T* src = inp + i * D;
    for (int64_t j = int64_t(sub) * W; j < D; j += int64_t(lanes) * W) {
      if constexpr (W == 4) {
        const float4 v = load4(src + j);
        atomic_add4(dst + j, make_float4(w * v.x, w * v.y, w * v.z, w * v.w));
      } else {
        atomicAdd(dst + j, w * to_float(src[j]));
      }
    }
  }
}

// dinp[i] += w[i] * dout[rows[i]]; dweights[i] += dot(dout[rows[i]], inp[i]). The row loop is
// uniform over the block (i0), so every lane reaches the group's shuffles.
template <typename T, int W>
__global__ void scatter_add_bwd_kernel(T* dinp, float* dweights, const float* dout, const T* inp,
                                       const int32_t* rows, const float* weights, int64_t M, int64_t D,
                                       int lanes_log2) {
  const int lanes = 1 << lanes_log2, sub = threadIdx.x & (lanes - 1);
  const int64_t per_block = kThreads >> lanes_log2, group = threadIdx.x >> lanes_log2;
  for (int64_t i0 = blockIdx.x * per_block; i0 < M; i0 += gridDim.x * per_block) {
    const int64_t i = i0 + group;
    const int64_t r = i < M ? rows[i] : -1;
    float dot = 0.0f;
    if (r >= 0) {
      const float w = weights ? weights[i] : 1.0f;
      const float* g = dout + r * D;
      const T* x = inp + i * D;
      T* dx = dinp ? dinp + i * D : nullptr;
      for (int64_t j = int64_t(sub) * W; j < D; j += int64_t(lanes) * W) {
        if constexpr (W == 4) {
          const float4 gv = load4(g + j);
          if (dweights) {
            const float4 xv = load4(x + j);
            dot += gv.x * xv.x + gv.y * xv.y + gv.z * xv.z + gv.w * xv.w;
          }
          if (dinp) {
            const float4 d = load4(dx + j);
            store4(dx + j, make_float4(d.x + w * gv.x, d.y + w * gv.y, d.z + w * gv.z, d.w + w * gv.w));
          }
        } else {
          if (dweights) dot += g[j] * to_float(x[j]);
          if (dinp) dx[j] = from_float<T>(to_float(dx[j]) + w * g[j]);
        }
      }
    }
    if (dweights) {
      for (int o = lanes >> 1; o > 0; o >>= 1) dot += __shfl_xor_sync(kFull, dot, o);
      if (r >= 0 && sub == 0) dweights[i] += dot;
    }
  }
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// log2 of the smallest power of two >= units, at most 5 (a warp).
int lanes_log2_for(int64_t units) {
  int l = 0;
  while (l < 5 && (int64_t(1) << l) < units) ++l;
  return l;
}

template <typename U>
void launch_gather(void* out, const void* inp, const int32_t* rows, int64_t M, int64_t row_bytes,
                   cudaStream_t stream) {
  const int64_t units = row_bytes / int64_t(sizeof(U));
  const int l = lanes_log2_for(units);
  gather_kernel<U><<<grid_for(M, kThreads >> l), kThreads, 0, stream>>>(
      static_cast<U*>(out), static_cast<const U*>(inp), rows, M, units, l);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void gather(T* out, const T* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream) {
  if (M == 0 || D == 0) return;
  const int64_t row_bytes = D * int64_t(sizeof(T));
  auto fits = [&](size_t u) { return row_bytes % int64_t(u) == 0 && aligned(out, u) && aligned(inp, u); };
  if (fits(16)) {
    launch_gather<uint4>(out, inp, rows, M, row_bytes, stream);
  } else if (fits(8)) {
    launch_gather<uint2>(out, inp, rows, M, row_bytes, stream);
  } else if (fits(4)) {
    launch_gather<unsigned>(out, inp, rows, M, row_bytes, stream);
  } else {
    launch_gather<unsigned short>(out, inp, rows, M, row_bytes, stream);
  }
}

// The 4-wide path: D % 4 == 0, fp32 buffers 16-byte and T buffers 4 * sizeof(T)-byte aligned.
template <typename T>
bool quad_ok(int64_t D, const float* f32, const T* a, const T* b) {
  return D % 4 == 0 && aligned(f32, 16) && aligned(a, 4 * sizeof(T)) && aligned(b, 4 * sizeof(T));
}

template <typename T>
void scatter_add(float* out, const T* inp, const int32_t* rows, const float* weights, int64_t M, int64_t D,
                 cudaStream_t stream) {
  if (M == 0 || D == 0) return;
  if (quad_ok<T>(D, out, inp, inp)) {
    const int l = lanes_log2_for(D / 4);
    scatter_add_kernel<T, 4><<<grid_for(M, kThreads >> l), kThreads, 0, stream>>>(out, inp, rows, weights, M, D, l);
  } else {
    const int l = lanes_log2_for(D);
    scatter_add_kernel<T, 1><<<grid_for(M, kThreads >> l), kThreads, 0, stream>>>(out, inp, rows, weights, M, D, l);
  }
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename T>
void scatter_add_bwd(T* dinp, float* dweights, const float* dout, const T* inp, const int32_t* rows,
                     const float* weights, int64_t M, int64_t D, cudaStream_t stream) {
  if (M == 0 || (!dinp && !dweights)) return;
  if (quad_ok<T>(D, dout, dinp, inp)) {  // null pointers count as aligned
    const int l = lanes_log2_for(D / 4);
    scatter_add_bwd_kernel<T, 4>
        <<<grid_for(M, kThreads >> l), kThreads, 0, stream>>>(dinp, dweights, dout, inp, rows, weights, M, D, l);
  } else {
    const int l = lanes_log2_for(D);
    scatter_add_bwd_kernel<T, 1>
        <<<grid_for(M, kThreads >> l), kThreads, 0, stream>>>(dinp, dweights, dout, inp, rows, weights, M, D, l);
  }
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gather_rows(float* out, const float* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream) {
  gather(out, inp, rows, M, D, stream);
}
void gather_rows(bf16* out, const bf16* inp, const int32_t* rows, int64_t M, int64_t D, cudaStream_t stream) {
  gather(out, inp, rows, M, D, stream);
}

void scatter_add_rows(float* out, const float* inp, const int32_t* rows, const float* weights, int64_t M, int64_t D,
                      cudaStream_t stream) {
  scatter_add(out, inp, rows, weights, M, D, stream);
}
void scatter_add_rows(float* out, const bf16* inp, const int32_t* rows, const float* weights, int64_t M, int64_t D,
                      cudaStream_t stream) {
  scatter_add(out, inp, rows, weights, M, D, stream);
}

void scatter_add_rows_backward(float* dinp, float* dweights, const float* dout, const float* inp, const int32_t* rows,
                               const float* weights, int64_t M, int64_t D, cudaStream_t stream) {
  scatter_add_bwd(dinp, dweights, dout, inp, rows, weights, M, D, stream);
}
void scatter_add_rows_backward(bf16* dinp, float* dweights, const float* dout, const bf16* inp, const int32_t* rows,
                               const float* weights, int64_t M, int64_t D, cudaStream_t stream) {
  scatter_add_bwd(dinp, dweights, dout, inp, rows, weights, M, D, stream);
}

}  // namespace moe::cuda
