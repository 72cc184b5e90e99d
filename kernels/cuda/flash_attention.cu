// FlashAttention-2 style kernels on WMMA (bf16 in, fp32 accumulate). A block owns 64 query rows
// (forward) or 64 keys (backward); each of its 4 warps owns 16 rows of every 64 x 64 score tile.
// Shared memory holds the bf16 tiles, the fp32 scores and the fp32 running output (forward) or
// key-gradient accumulators (backward); the online-softmax statistics stay in registers.
// Backward runs one block per (key tile, batch, kv head) and loops over the group's query heads,
// so dk/dv need no atomics; dq is accumulated with fp32 atomics into a scratch buffer.
#include <mma.h>

#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/flash_attention.cuh"

namespace moe::cuda {

namespace {

using namespace nvcuda;

constexpr int kTile = 64;  // query rows per block, keys per tile
constexpr int kWarps = 4;  // 16 rows each
constexpr int kThreads = 32 * kWarps;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragAT = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBT = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// kTile rows of HD bf16 from global memory (row stride `stride` elements) into shared (stride HD).
template <int HD>
__device__ void load_tile(bf16* dst, const bf16* src, int64_t stride) {
  constexpr int kVec = HD / 8;  // 16-byte vectors per row
  for (int i = threadIdx.x; i < kTile * kVec; i += kThreads) {
    const int r = i / kVec, c = i % kVec;
    reinterpret_cast<uint4*>(dst + r * HD)[c] = reinterpret_cast<const uint4*>(src + r * stride)[c];
  }
}

// C[16, 16 * n_tiles] (+)= A[16, K] B[K, 16 * n_tiles] for one warp; A and B in shared memory,
// C in shared fp32 (loaded first when accumulating). ATrans/BTrans pick the fragment layouts.
template <typename FA, typename FB, int K, int NT>
__device__ void warp_gemm(float* C, int ldc, bool accumulate, const bf16* A, int a_step, int lda, const bf16* B,
                          int b_step_k, int b_step_n, int ldb) {
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    FragC acc;
    if (accumulate) wmma::load_matrix_sync(acc, C + n * 16, ldc, wmma::mem_row_major);
    else wmma::fill_fragment(acc, 0.0f);
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      FA a;
      FB b;
      wmma::load_matrix_sync(a, A + kk * a_step, lda);
      wmma::load_matrix_sync(b, B + kk * b_step_k + n * b_step_n, ldb);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(C + n * 16, acc, ldc, wmma::mem_row_major);
  }
}

template <int HD>
constexpr size_t fwd_smem() {
  return 3 * kTile * HD * sizeof(bf16) + kTile * kTile * (sizeof(float) + sizeof(bf16)) + kTile * HD * sizeof(float);
}

template <int HD>
__global__ void __launch_bounds__(kThreads) flash_fwd_kernel(bf16* out, float* lse, const bf16* q, const bf16* k,
                                                             const bf16* v, int T, int H, int KV, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kTile * HD;
  bf16* sV = sK + kTile * HD;
  float* sS = reinterpret_cast<float*>(sV + kTile * HD);
  bf16* sP = reinterpret_cast<bf16*>(sS + kTile * kTile);
  float* sO = reinterpret_cast<float*>(sP + kTile * kTile);

  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int b = blockIdx.y / H, h = blockIdx.y % H, kvh = h / (H / KV);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, row0 = warp * 16;
  const int64_t qs = int64_t(H) * HD, kvs = int64_t(KV) * HD;
  load_tile<HD>(sQ, q + (int64_t(b) * T + qt * kTile) * qs + h * HD, qs);
  for (int i = threadIdx.x; i < kTile * HD; i += kThreads) sO[i] = 0.0f;
  float m[16], l[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) m[r] = -INFINITY, l[r] = 0.0f;

  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();  // the previous tile's K and V are no longer read
    const int64_t kv_off = (int64_t(b) * T + kt * kTile) * kvs + kvh * HD;
    load_tile<HD>(sK, k + kv_off, kvs);
    load_tile<HD>(sV, v + kv_off, kvs);
    __syncthreads();
    // S = Q K^T for this warp's rows.
    warp_gemm<FragA, FragBT, HD, kTile / 16>(sS + row0 * kTile, kTile, false, sQ + row0 * HD, 16, HD, sK, 16,
                                             16 * HD, HD);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int qi = qt * kTile + row0 + r;
      const float* srow = sS + (row0 + r) * kTile;
      const int k0 = kt * kTile + lane;
      const float s0 = k0 <= qi ? srow[lane] * scale : -INFINITY;
      const float s1 = k0 + 32 <= qi ? srow[lane + 32] * scale : -INFINITY;
      const float mnew = fmaxf(m[r], warp_max(fmaxf(s0, s1)));
      const float p0 = expf(s0 - mnew), p1 = expf(s1 - mnew), alpha = expf(m[r] - mnew);
      l[r] = l[r] * alpha + warp_sum(p0 + p1);
      m[r] = mnew;
      bf16* prow = sP + (row0 + r) * kTile;
      prow[lane] = __float2bfloat16_rn(p0);
      prow[lane + 32] = __float2bfloat16_rn(p1);
      float* orow = sO + (row0 + r) * HD;
      for (int c = lane; c < HD; c += 32) orow[c] *= alpha;
    }
    __syncwarp();
    // O += P V for this warp's rows.
    warp_gemm<FragA, FragB, kTile, HD / 16>(sO + row0 * HD, HD, true, sP + row0 * kTile, 16, kTile, sV, 16 * HD, 16,
                                            HD);
    __syncwarp();
  }
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int t = qt * kTile + row0 + r;
    const float inv = 1.0f / l[r];
    bf16* orow = out + (int64_t(b) * T + t) * qs + h * HD;
    for (int c = lane; c < HD; c += 32) orow[c] = __float2bfloat16_rn(sO[(row0 + r) * HD + c] * inv);
    if (lane == 0) lse[(int64_t(b) * H + h) * T + t] = m[r] + logf(l[r]);
  }
}

// delta[b, h, t] = sum_d dout * out (the softmax backward's row term), one warp per row.
__global__ void delta_kernel(float* delta, const bf16* dout, const bf16* out, int64_t B, int T, int H, int hd) {
  const int64_t rows = B * T * H, warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    const int64_t h = r % H, bt = r / H, b = bt / T, t = bt % T;
    float s = 0.0f;
    for (int c = lane; c < hd; c += 32) s += to_float(dout[r * hd + c]) * to_float(out[r * hd + c]);
    s = warp_sum(s);
    if (lane == 0) delta[(b * H + h) * T + t] = s;
  }
}

template <int HD>
constexpr size_t bwd_smem() {
  return 4 * kTile * HD * sizeof(bf16) + 3 * kTile * HD * sizeof(float) + 2 * kTile * kTile * sizeof(float) +
         kTile * kTile * sizeof(bf16) + 2 * kTile * sizeof(float);
}

template <int HD>
__global__ void __launch_bounds__(kThreads) flash_bwd_kernel(float* dq_acc, bf16* dk, bf16* dv, const bf16* dout,
                                                             const float* lse, const float* delta, const bf16* q,
                                                             const bf16* k, const bf16* v, int T, int H, int KV,
                                                             float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sK = reinterpret_cast<bf16*>(smem);
  bf16* sV = sK + kTile * HD;
  bf16* sQ = sV + kTile * HD;
  bf16* sdO = sQ + kTile * HD;
  float* sdK = reinterpret_cast<float*>(sdO + kTile * HD);
  float* sdV = sdK + kTile * HD;
  float* sdQ = sdV + kTile * HD;
  float* sS = sdQ + kTile * HD;   // P in fp32
  float* sdP = sS + kTile * kTile;
  bf16* sP = reinterpret_cast<bf16*>(sdP + kTile * kTile);  // P, then dS, in bf16
  float* sL = reinterpret_cast<float*>(sP + kTile * kTile);
  float* sD = sL + kTile;

  const int kt = blockIdx.x, nt = int(gridDim.x);
  const int b = blockIdx.y / KV, kvh = blockIdx.y % KV, group = H / KV;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, row0 = warp * 16;
  const int64_t qs = int64_t(H) * HD, kvs = int64_t(KV) * HD;
  const int64_t kv_off = (int64_t(b) * T + kt * kTile) * kvs + kvh * HD;
  load_tile<HD>(sK, k + kv_off, kvs);
  load_tile<HD>(sV, v + kv_off, kvs);
  for (int i = threadIdx.x; i < kTile * HD; i += kThreads) sdK[i] = sdV[i] = 0.0f;

  for (int g = 0; g < group; ++g) {
    const int h = kvh * group + g;
    for (int qt = kt; qt < nt; ++qt) {
      __syncthreads();  // the previous tile's Q, dO, dS are no longer read
      const int64_t q_off = (int64_t(b) * T + qt * kTile) * qs + h * HD;
      load_tile<HD>(sQ, q + q_off, qs);
      load_tile<HD>(sdO, dout + q_off, qs);
      if (threadIdx.x < kTile) {
        const int64_t row = (int64_t(b) * H + h) * T + qt * kTile + threadIdx.x;
        sL[threadIdx.x] = lse[row];
        sD[threadIdx.x] = delta[row];
      }
      __syncthreads();
      // P = exp(scale Q K^T - lse), causal (this warp's query rows).
      warp_gemm<FragA, FragBT, HD, kTile / 16>(sS + row0 * kTile, kTile, false, sQ + row0 * HD, 16, HD, sK, 16,
                                               16 * HD, HD);
      __syncwarp();
      for (int r = 0; r < 16; ++r) {
        const int qi = qt * kTile + row0 + r;
        for (int c = lane; c < kTile; c += 32) {
          const int idx = (row0 + r) * kTile + c;
          const float p = kt * kTile + c <= qi ? expf(sS[idx] * scale - sL[row0 + r]) : 0.0f;
          sS[idx] = p;
          sP[idx] = __float2bfloat16_rn(p);
        }
      }
      __syncthreads();  // dV needs every query row of P
      // dV += P^T dO (this warp's key rows).
      warp_gemm<FragAT, FragB, kTile, HD / 16>(sdV + row0 * HD, HD, true, sP + row0, 16 * kTile, kTile, sdO, 16 * HD,
                                               16, HD);
      // dP = dO V^T (this warp's query rows).
      warp_gemm<FragA, FragBT, HD, kTile / 16>(sdP + row0 * kTile, kTile, false, sdO + row0 * HD, 16, HD, sV, 16,
                                               16 * HD, HD);
      __syncthreads();  // every warp is done reading P before dS overwrites it
      for (int r = 0; r < 16; ++r)
        for (int c = lane; c < kTile; c += 32) {
          const int idx = (row0 + r) * kTile + c;
          sP[idx] = __float2bfloat16_rn(scale * sS[idx] * (sdP[idx] - sD[row0 + r]));
        }
      __syncthreads();  // dK needs every query row of dS
      // dK += dS^T Q (key rows); dQ = dS K (query rows), added to the global fp32 accumulator.
      warp_gemm<FragAT, FragB, kTile, HD / 16>(sdK + row0 * HD, HD, true, sP + row0, 16 * kTile, kTile, sQ, 16 * HD,
                                               16, HD);
      warp_gemm<FragA, FragB, kTile, HD / 16>(sdQ + row0 * HD, HD, false, sP + row0 * kTile, 16, kTile, sK, 16 * HD,
                                              16, HD);
      __syncwarp();
      for (int r = 0; r < 16; ++r) {
        float* dst = dq_acc + (int64_t(b) * T + qt * kTile + row0 + r) * qs + h * HD;
        for (int c = lane; c < HD; c += 32) atomicAdd(dst + c, sdQ[(row0 + r) * HD + c]);
      }
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kTile * HD; i += kThreads) {
    const int r = i / HD, c = i % HD;
    const int64_t idx = (int64_t(b) * T + kt * kTile + r) * kvs + kvh * HD + c;
    dk[idx] = __float2bfloat16_rn(__bfloat162float(dk[idx]) + sdK[i]);
    dv[idx] = __float2bfloat16_rn(__bfloat162float(dv[idx]) + sdV[i]);
  }
}

// dq += dq_acc (bf16 += fp32)
__global__ void add_dq_kernel(bf16* dq, const float* acc, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dq[i] = __float2bfloat16_rn(__bfloat162float(dq[i]) + acc[i]);
}

void check(int64_t T, int64_t H, int64_t KV, int64_t hd) {
  MOE_CUDA_REQUIRE(flash_attention_supported(T, hd), "flash attention: T = " + std::to_string(T) +
                                                         " must be a multiple of 64 and hd = " + std::to_string(hd) +
                                                         " 64 or 128");
  MOE_CUDA_REQUIRE(KV > 0 && H % KV == 0, "flash attention: n_heads must be a multiple of n_kv_heads");
}

template <int HD>
void forward_hd(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H,
                int64_t KV, cudaStream_t stream) {
  constexpr size_t bytes = fwd_smem<HD>();
  MOE_CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(unsigned(T / kTile), unsigned(B * H));
  flash_fwd_kernel<HD><<<grid, kThreads, bytes, stream>>>(out, lse, q, k, v, int(T), int(H), int(KV),
                                                          1.0f / sqrtf(float(HD)));
  MOE_CUDA_CHECK_LAUNCH();
}

template <int HD>
void backward_hd(float* dq_acc, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* delta,
                 const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                 cudaStream_t stream) {
  constexpr size_t bytes = bwd_smem<HD>();
  MOE_CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(unsigned(T / kTile), unsigned(B * KV));
  flash_bwd_kernel<HD><<<grid, kThreads, bytes, stream>>>(dq_acc, dk, dv, dout, lse, delta, q, k, v, int(T), int(H),
                                                          int(KV), 1.0f / sqrtf(float(HD)));
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool flash_attention_supported(int64_t T, int64_t hd) { return T > 0 && T % kTile == 0 && (hd == 64 || hd == 128); }

void flash_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                             int64_t H, int64_t KV, int64_t hd, cudaStream_t stream) {
  check(T, H, KV, hd);
  if (B * H == 0) return;
  if (hd == 64) forward_hd<64>(out, lse, q, k, v, B, T, H, KV, stream);
  else forward_hd<128>(out, lse, q, k, v, B, T, H, KV, stream);
}

void flash_attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out, const float* lse,
                              const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                              int64_t hd, cudaStream_t stream) {
  check(T, H, KV, hd);
  if (B * H == 0) return;
  const int64_t nq = B * T * H * hd, rows = B * T * H;
  void* raw = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&raw, sizeof(float) * (nq + rows), stream));
  float* dq_acc = static_cast<float*>(raw);
  float* delta = dq_acc + nq;
  MOE_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, sizeof(float) * nq, stream));
  delta_kernel<<<grid_for(rows, 8), 256, 0, stream>>>(delta, dout, out, B, int(T), int(H), int(hd));
  MOE_CUDA_CHECK_LAUNCH();
  if (hd == 64) backward_hd<64>(dq_acc, dk, dv, dout, lse, delta, q, k, v, B, T, H, KV, stream);
  else backward_hd<128>(dq_acc, dk, dv, dout, lse, delta, q, k, v, B, T, H, KV, stream);
  add_dq_kernel<<<grid_for(nq, 256, 8192), 256, 0, stream>>>(dq, dq_acc, nq);
  MOE_CUDA_CHECK_LAUNCH();
  MOE_CUDA_CHECK(cudaFreeAsync(raw, stream));
}

}  // namespace moe::cuda
