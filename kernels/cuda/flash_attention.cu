// FlashAttention-2 style kernels on the bf16 tensor-core instruction mma.m16n8k16 (fp32
// accumulate). A block owns 64 query rows (forward) or 64 keys (backward), 16 per warp (or 128 in
// 8 warps: FlashBlock::k128, T % 128 == 0); scores,
// probabilities, softmax statistics and the output / key-gradient accumulators live in registers,
// shared memory holds the bf16 tiles row-major; where a product needs a tile as its k-major B
// operand, ldmatrix .trans reads the fragment transposed (no transposed copies). Backward runs one
// block per (key tile, batch, kv head) and loops over the group's query heads, so dk/dv need no
// atomics; dq goes through an fp32 atomic accumulator (sm_90: four floats per atomic).
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/flash_attention.cuh"
#include "kernels/cuda/mma_ptx.cuh"

namespace moe::cuda {

namespace {

constexpr int kTile = 64;  // query rows per block (forward), keys per block (backward), tile width
constexpr int kWarps = 4;  // 16 rows each
constexpr int kThreads = 32 * kWarps;

__device__ __forceinline__ uint32_t ld32(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// A fragment (16 x 16 at row r0, col k0) of a row-major bf16 tile with row stride ld.
__device__ __forceinline__ void load_a(uint32_t* a, const bf16* t, int ld, int r0, int k0) {
  const int g = (threadIdx.x & 31) >> 2, c = 2 * (threadIdx.x & 3);
  a[0] = ld32(t + (r0 + g) * ld + k0 + c);
  a[1] = ld32(t + (r0 + g + 8) * ld + k0 + c);
  a[2] = ld32(t + (r0 + g) * ld + k0 + c + 8);
  a[3] = ld32(t + (r0 + g + 8) * ld + k0 + c + 8);
}
// B fragment (16 x 8: k from k0, n from n0) of a tile stored n-major ("col"): t[n * ld + k].
__device__ __forceinline__ void load_b(uint32_t& b0, uint32_t& b1, const bf16* t, int ld, int n0, int k0) {
  const int g = (threadIdx.x & 31) >> 2, c = 2 * (threadIdx.x & 3);
  b0 = ld32(t + (n0 + g) * ld + k0 + c);
  b1 = ld32(t + (n0 + g) * ld + k0 + c + 8);
}
// The A fragment of k-block j from an accumulator s[n][4] (n-tiles 2j and 2j+1).
__device__ __forceinline__ void acc_to_a(uint32_t* a, const float (*s)[4], int j) {
  a[0] = pack(s[2 * j][0], s[2 * j][1]);
  a[1] = pack(s[2 * j][2], s[2 * j][3]);
  a[2] = pack(s[2 * j + 1][0], s[2 * j + 1][1]);
  a[3] = pack(s[2 * j + 1][2], s[2 * j + 1][3]);
}

// ROWS rows of HD bf16 from global (row stride `stride`) into shared, row-major with stride ld
// (asynchronously: visible after cp_async_wait and a barrier).
template <int HD, int ROWS = kTile, int THREADS = kThreads>
__device__ void copy_rows_async(bf16* dst, int ld, const bf16* src, int64_t stride) {
  constexpr int kVec = HD / 8;
  for (int i = threadIdx.x; i < ROWS * kVec; i += THREADS) {
    const int r = i / kVec, c = i % kVec;
    cp_async16(dst + r * ld + c * 8, src + r * stride + c * 8);
  }
}
// kTile floats (16-byte aligned at both ends).
template <int THREADS = kThreads>
__device__ void copy_floats_async(float* dst, const float* src) {
  for (int i = threadIdx.x; i < kTile / 4; i += THREADS) cp_async16(dst + 4 * i, src + 4 * i);
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// NW warps of 16 query rows: Q (16 NW rows), and K and V twice (double buffered).
template <int HD, int NW>
constexpr size_t fwd_smem() {
  return (16 * NW + 4 * kTile) * (HD + 8) * sizeof(bf16);
}

// Forward: a block of NW warps owns 16 NW query rows; a warp keeps its 16 rows' Q fragments,
// scores, running max/sum and output in registers; shared memory holds Q (once), and 64-key tiles
// K and V in two buffers: tile kt + 1 is copied in (cp.async) while tile kt is computed. 8 warps
// (T % 128 == 0) share each K / V tile between twice the rows; the first four skip nothing on the
// last tile (it is masked for them: wasted, not wrong, since tile 0 gives every row a finite max).
template <int HD, int NW>
__global__ void __launch_bounds__(32 * NW) flash_fwd_kernel(bf16* out, float* lse, const bf16* q, const bf16* k,
                                                            const bf16* v, int T, int H, int KV, float scale) {
  constexpr int LD = HD + 8, NT = kTile / 8, ND = HD / 8, QROWS = 16 * NW, THREADS = 32 * NW;
  static_assert(NW == 4 || NW == 8, "4 or 8 warps");
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK0 = sQ + QROWS * LD;       // K of even tiles, then V of even tiles,
  bf16* sV0 = sK0 + kTile * LD;      // K and V of odd tiles
  constexpr int kBuf = 2 * kTile * LD;

  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int last = (qt * QROWS + QROWS - 1) / kTile;     // the last key tile any of its rows sees
  const int b = blockIdx.y / H, h = blockIdx.y % H, kvh = h / (H / KV);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = 2 * (lane & 3);
  const int64_t qs = int64_t(H) * HD, kvs = int64_t(KV) * HD;
  auto fetch_kv = [&](int kt) {
    const int64_t kv_off = (int64_t(b) * T + kt * kTile) * kvs + kvh * HD;
    copy_rows_async<HD, kTile, THREADS>(sK0 + (kt & 1) * kBuf, LD, k + kv_off, kvs);
    copy_rows_async<HD, kTile, THREADS>(sV0 + (kt & 1) * kBuf, LD, v + kv_off, kvs);
  };
  copy_rows_async<HD, QROWS, THREADS>(sQ, LD, q + (int64_t(b) * T + qt * QROWS) * qs + h * HD, qs);
  fetch_kv(0);
  cp_async_commit();
  uint32_t qa[HD / 16][4];

  float o[ND][4] = {};
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const int row0 = qt * QROWS + warp * 16 + g, row1 = row0 + 8;  // this lane's two query rows
  for (int kt = 0; kt <= last; ++kt) {
    if (kt < last) fetch_kv(kt + 1);  // into the buffer the previous iteration finished reading
    cp_async_commit();              // (an empty group on the last tile keeps the count uniform)
    cp_async_wait<1>();             // tile kt (and Q) have landed for this thread...
    __syncthreads();                // ...and for every thread
    if (kt == 0) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) load_a(qa[kk], sQ, LD, warp * 16, kk * 16);
    }
    const bf16* sK = sK0 + (kt & 1) * kBuf;
    const bf16* sV = sV0 + (kt & 1) * kBuf;
    float s[NT][4] = {};
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        uint32_t b0, b1;
        load_b(b0, b1, sK, LD, n * 8, kk * 16);
        mma16816(s[n], qa[kk], b0, b1);
      }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int key = kt * kTile + n * 8 + c;
      s[n][0] = key <= row0 ? s[n][0] * scale : -INFINITY;
      s[n][1] = key + 1 <= row0 ? s[n][1] * scale : -INFINITY;
      s[n][2] = key <= row1 ? s[n][2] * scale : -INFINITY;
      s[n][3] = key + 1 <= row1 ? s[n][3] * scale : -INFINITY;
      mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
      mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
    }
    const float n0 = fmaxf(m0, quad_max(mx0)), n1 = fmaxf(m1, quad_max(mx1));
    const float a0 = __expf(m0 - n0), a1 = __expf(m1 - n1);
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      s[n][0] = __expf(s[n][0] - n0);
      s[n][1] = __expf(s[n][1] - n0);
      s[n][2] = __expf(s[n][2] - n1);
      s[n][3] = __expf(s[n][3] - n1);
      sum0 += s[n][0] + s[n][1];
      sum1 += s[n][2] + s[n][3];
    }
    l0 = l0 * a0 + quad_sum(sum0);
    l1 = l1 * a1 + quad_sum(sum1);
    m0 = n0;
    m1 = n1;
#pragma unroll
    for (int d = 0; d < ND; ++d) o[d][0] *= a0, o[d][1] *= a0, o[d][2] *= a1, o[d][3] *= a1;
#pragma unroll
    for (int j = 0; j < kTile / 16; ++j) {
      uint32_t pa[4];
      acc_to_a(pa, s, j);
#pragma unroll
      for (int d = 0; d < ND; ++d) {
        uint32_t b0, b1;
        load_b_trans(b0, b1, sV, LD, d * 8, j * 16);
        mma16816(o[d], pa, b0, b1);
      }
    }
    __syncthreads();  // every warp is done with this buffer before the next fetch overwrites it
  }
  const float i0 = 1.0f / l0, i1 = 1.0f / l1;
  bf16* out0 = out + (int64_t(b) * T + row0) * qs + h * HD;
  bf16* out1 = out + (int64_t(b) * T + row1) * qs + h * HD;
#pragma unroll
  for (int d = 0; d < ND; ++d) {
    *reinterpret_cast<uint32_t*>(out0 + d * 8 + c) = pack(o[d][0] * i0, o[d][1] * i0);
    *reinterpret_cast<uint32_t*>(out1 + d * 8 + c) = pack(o[d][2] * i1, o[d][3] * i1);
  }
  if ((lane & 3) == 0) {
    lse[(int64_t(b) * H + h) * T + row0] = m0 + logf(l0);
    lse[(int64_t(b) * H + h) * T + row1] = m1 + logf(l1);
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

// NW warps own 16 keys each: K, V (16 NW rows); Q and dO twice (double buffered); dS (64 x 16 NW);
// lse and delta twice; with 8 warps the second half's dq partial sums (64 x HD fp32).
template <int HD, int NW>
constexpr size_t bwd_smem() {
  constexpr int keys = 16 * NW;
  return (2 * keys * (HD + 8) + 4 * kTile * (HD + 8) + kTile * (keys + 8)) * sizeof(bf16) +
         4 * kTile * sizeof(float) + (NW == 8 ? kTile * HD * sizeof(float) : 0);
}

// Backward: a block of NW warps owns 16 NW keys of one kv head (each warp 16 of them) and loops
// over the query heads of its group and the 64-query tiles that reach its keys. Per tile a warp
// forms S^T and P^T for its keys in registers, adds P^T dO to dV and dS^T Q to dK (registers),
// and shares dS through shared memory; then each warp adds dS K for 16 query rows to dq (fp32
// atomics). With 8 warps (128 keys: T % 128 == 0) warps w and w + 4 split the keys of the dq
// product and the second one hands its partial sums over through shared memory, so a block issues
// the atomics of 64 keys' worth of 128 keys: half the dq atomics, and each Q / dO tile loaded
// serves twice the keys. Q, dO, lse and delta of the next (head, query tile) stream in (cp.async)
// during the current one.
template <int HD, int NW>
__global__ void __launch_bounds__(32 * NW, 1) flash_bwd_kernel(float* dq_acc, bf16* dk, bf16* dv, const bf16* dout,
                                                               const float* lse, const float* delta, const bf16* q,
                                                               const bf16* k, const bf16* v, int T, int H, int KV,
                                                               float scale, bool accumulate) {
  constexpr int LD = HD + 8, NT = kTile / 8, ND = HD / 8, KEYS = 16 * NW, THREADS = 32 * NW, kTSK = KEYS + 8;
  static_assert(NW == 4 || NW == 8, "4 or 8 warps");
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sK = reinterpret_cast<bf16*>(smem);  // [key][d]
  bf16* sV = sK + KEYS * LD;                 // [key][d]
  bf16* sQ0 = sV + KEYS * LD;                // [q][d], buffers 0 and 1
  bf16* sdO0 = sQ0 + 2 * kTile * LD;         // [q][d], buffers 0 and 1
  bf16* sdS = sdO0 + 2 * kTile * LD;         // [q][key]
  float* sL0 = reinterpret_cast<float*>(sdS + kTile * kTSK);  // lse, buffers 0 and 1
  float* sD0 = sL0 + 2 * kTile;                               // delta, buffers 0 and 1
  float* sDQ = sD0 + 2 * kTile;  // NW == 8: dq partials [query warp][element][lane] (no bank conflicts)

  const int kt = blockIdx.x, nt = T / kTile, qt0 = kt * KEYS / kTile;
  const int b = blockIdx.y / KV, kvh = blockIdx.y % KV, group = H / KV;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = 2 * (lane & 3);
  const int64_t qs = int64_t(H) * HD, kvs = int64_t(KV) * HD;
  const int64_t kv_off = (int64_t(b) * T + kt * KEYS) * kvs + kvh * HD;
  const int span = nt - qt0, steps = group * span;  // (query head, query tile) pairs, head-major
  auto fetch = [&](int it) {
    const int h = kvh * group + it / span, qt = qt0 + it % span, buf = it & 1;
    const int64_t q_off = (int64_t(b) * T + qt * kTile) * qs + h * HD;
    const int64_t row = (int64_t(b) * H + h) * T + qt * kTile;
    copy_rows_async<HD, kTile, THREADS>(sQ0 + buf * kTile * LD, LD, q + q_off, qs);
    copy_rows_async<HD, kTile, THREADS>(sdO0 + buf * kTile * LD, LD, dout + q_off, qs);
    copy_floats_async<THREADS>(sL0 + buf * kTile, lse + row);
    copy_floats_async<THREADS>(sD0 + buf * kTile, delta + row);
  };
  copy_rows_async<HD, KEYS, THREADS>(sK, LD, k + kv_off, kvs);
  copy_rows_async<HD, KEYS, THREADS>(sV, LD, v + kv_off, kvs);
  fetch(0);
  cp_async_commit();
  const int key0 = kt * KEYS + warp * 16 + g, key1 = key0 + 8;  // this lane's two keys
  float dka[ND][4] = {}, dva[ND][4] = {};

  for (int it = 0; it < steps; ++it) {
    const int h = kvh * group + it / span, qt = qt0 + it % span, buf = it & 1;
    if (it + 1 < steps) fetch(it + 1);  // into the buffer the previous step finished reading
    cp_async_commit();                   // (an empty group on the last step keeps the count uniform)
    cp_async_wait<1>();                  // this step's tiles (and K, V) have landed for this thread...
    __syncthreads();                     // ...and for every thread
    const bf16* sQ = sQ0 + buf * kTile * LD;
    const bf16* sdO = sdO0 + buf * kTile * LD;
    const float* sL = sL0 + buf * kTile;
    const float* sD = sD0 + buf * kTile;
    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x 64 queries.
    float st[NT][4] = {}, dpt[NT][4] = {};
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t ka[4], va[4];
      load_a(ka, sK, LD, warp * 16, kk * 16);
      load_a(va, sV, LD, warp * 16, kk * 16);
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        uint32_t b0, b1;
        load_b(b0, b1, sQ, LD, n * 8, kk * 16);
        mma16816(st[n], ka, b0, b1);
        load_b(b0, b1, sdO, LD, n * 8, kk * 16);
        mma16816(dpt[n], va, b0, b1);
      }
    }
    // P^T = exp(scale S^T - lse[q]) (0 where key > q); dS^T = scale P^T (dP^T - delta[q]).
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int ql = n * 8 + c, qg = qt * kTile + ql;
      const float L0 = sL[ql], L1 = sL[ql + 1], D0 = sD[ql], D1 = sD[ql + 1];
      st[n][0] = key0 <= qg ? __expf(st[n][0] * scale - L0) : 0.0f;
      st[n][1] = key0 <= qg + 1 ? __expf(st[n][1] * scale - L1) : 0.0f;
      st[n][2] = key1 <= qg ? __expf(st[n][2] * scale - L0) : 0.0f;
      st[n][3] = key1 <= qg + 1 ? __expf(st[n][3] * scale - L1) : 0.0f;
      dpt[n][0] = scale * st[n][0] * (dpt[n][0] - D0);
      dpt[n][1] = scale * st[n][1] * (dpt[n][1] - D1);
      dpt[n][2] = scale * st[n][2] * (dpt[n][2] - D0);
      dpt[n][3] = scale * st[n][3] * (dpt[n][3] - D1);
    }
    // dV += P^T dO, dK += dS^T Q (k over the 64 queries).
#pragma unroll
    for (int j = 0; j < kTile / 16; ++j) {
      uint32_t pa[4], sa[4];
      acc_to_a(pa, st, j);
      acc_to_a(sa, dpt, j);
#pragma unroll
      for (int d = 0; d < ND; ++d) {
        uint32_t b0, b1;
        load_b_trans(b0, b1, sdO, LD, d * 8, j * 16);
        mma16816(dva[d], pa, b0, b1);
        load_b_trans(b0, b1, sQ, LD, d * 8, j * 16);
        mma16816(dka[d], sa, b0, b1);
      }
    }
    // dS (query-major) for the dq product.
    const int kl0 = warp * 16 + g;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int ql = n * 8 + c;
      sdS[ql * kTSK + kl0] = __float2bfloat16_rn(dpt[n][0]);
      sdS[(ql + 1) * kTSK + kl0] = __float2bfloat16_rn(dpt[n][1]);
      sdS[ql * kTSK + kl0 + 8] = __float2bfloat16_rn(dpt[n][2]);
      sdS[(ql + 1) * kTSK + kl0 + 8] = __float2bfloat16_rn(dpt[n][3]);
    }
    __syncthreads();
    // dq rows (16 per query warp qw) += dS K over 64 of the block's keys (the key half of warp).
    const int qw = warp % 4, half = warp / 4;
    float dqa[ND][4] = {};
#pragma unroll
    for (int j = 0; j < kTile / 16; ++j) {
      uint32_t a[4];
      load_a(a, sdS, kTSK, qw * 16, half * 64 + j * 16);
#pragma unroll
      for (int d = 0; d < ND; ++d) {
        uint32_t b0, b1;
        load_b_trans(b0, b1, sK, LD, d * 8, half * 64 + j * 16);
        mma16816(dqa[d], a, b0, b1);
      }
    }
    if constexpr (NW == 8) {  // the second key half's partial sums join the first's
      float* part = sDQ + qw * (ND * 4 * 32) + lane;
      if (half == 1)
#pragma unroll
        for (int d = 0; d < ND; ++d)
#pragma unroll
          for (int e = 0; e < 4; ++e) part[(d * 4 + e) * 32] = dqa[d][e];
      __syncthreads();
      if (half == 0)
#pragma unroll
        for (int d = 0; d < ND; ++d)
#pragma unroll
          for (int e = 0; e < 4; ++e) dqa[d][e] += part[(d * 4 + e) * 32];
    }
    float* dq0 = dq_acc + (int64_t(b) * T + qt * kTile + qw * 16 + g) * qs + h * HD;
    float* dq1 = dq0 + 8 * qs;
    if (half == 0)  // warp-uniform: whole warps add their 16 rows
#pragma unroll
      for (int d = 0; d < ND; ++d) {
#if __CUDA_ARCH__ >= 900
        // Lanes l and l ^ 1 hold columns c, c + 1 and c ^ 2, (c ^ 2) + 1 of rows g and g + 8: they
        // swap one pair so that the even lane adds four columns of row g, the odd one of row g + 8.
        const bool odd = lane & 1;
        const float r0 = __shfl_xor_sync(0xffffffffu, odd ? dqa[d][0] : dqa[d][2], 1);
        const float r1 = __shfl_xor_sync(0xffffffffu, odd ? dqa[d][1] : dqa[d][3], 1);
        if (!odd) atomicAdd(reinterpret_cast<float4*>(dq0 + d * 8 + c), make_float4(dqa[d][0], dqa[d][1], r0, r1));
        else atomicAdd(reinterpret_cast<float4*>(dq1 + d * 8 + c - 2), make_float4(r0, r1, dqa[d][2], dqa[d][3]));
#else
        atomicAdd(dq0 + d * 8 + c, dqa[d][0]);
        atomicAdd(dq0 + d * 8 + c + 1, dqa[d][1]);
        atomicAdd(dq1 + d * 8 + c, dqa[d][2]);
        atomicAdd(dq1 + d * 8 + c + 1, dqa[d][3]);
#endif
      }
    __syncthreads();  // dS and this buffer are read by every warp before the next step rewrites them
  }
  bf16* dk0 = dk + (int64_t(b) * T + key0) * kvs + kvh * HD;
  bf16* dk1 = dk0 + 8 * kvs;
  bf16* dv0 = dv + (int64_t(b) * T + key0) * kvs + kvh * HD;
  bf16* dv1 = dv0 + 8 * kvs;
  auto add = [accumulate](bf16* p, float x) {
    *p = __float2bfloat16_rn(accumulate ? __bfloat162float(*p) + x : x);  // (overwrite: *p is not read)
  };
#pragma unroll
  for (int d = 0; d < ND; ++d) {
    add(dk0 + d * 8 + c, dka[d][0]);
    add(dk0 + d * 8 + c + 1, dka[d][1]);
    add(dk1 + d * 8 + c, dka[d][2]);
    add(dk1 + d * 8 + c + 1, dka[d][3]);
    add(dv0 + d * 8 + c, dva[d][0]);
    add(dv0 + d * 8 + c + 1, dva[d][1]);
    add(dv1 + d * 8 + c, dva[d][2]);
    add(dv1 + d * 8 + c + 1, dva[d][3]);
  }
}

// dq += dq_acc (bf16 += fp32), or dq = dq_acc rounded
__global__ void add_dq_kernel(bf16* dq, const float* acc, int64_t n, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dq[i] = __float2bfloat16_rn(accumulate ? __bfloat162float(dq[i]) + acc[i] : acc[i]);
}

void check(int64_t T, int64_t H, int64_t KV, int64_t hd) {
  MOE_CUDA_REQUIRE(flash_attention_supported(T, hd), "flash attention: T = " + std::to_string(T) +
                                                         " must be a multiple of 64 and hd = " + std::to_string(hd) +
                                                         " 64 or 128");
  MOE_CUDA_REQUIRE(KV > 0 && H % KV == 0, "flash attention: n_heads must be a multiple of n_kv_heads");
}

template <int HD, int NW>
void forward_nw(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H,
                int64_t KV, cudaStream_t stream) {
  constexpr size_t bytes = fwd_smem<HD, NW>();
  MOE_CUDA_CHECK(
      cudaFuncSetAttribute(flash_fwd_kernel<HD, NW>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(unsigned(T / (16 * NW)), unsigned(B * H));
  flash_fwd_kernel<HD, NW><<<grid, 32 * NW, bytes, stream>>>(out, lse, q, k, v, int(T), int(H), int(KV),
                                                             1.0f / sqrtf(float(HD)));
  MOE_CUDA_CHECK_LAUNCH();
}

bool use_128(FlashBlock block, int64_t T) { return block == FlashBlock::k128 && T % 128 == 0; }

template <int HD>
void forward_hd(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H,
                int64_t KV, cudaStream_t stream, FlashBlock block) {
  if (use_128(block, T)) forward_nw<HD, 8>(out, lse, q, k, v, B, T, H, KV, stream);
  else forward_nw<HD, 4>(out, lse, q, k, v, B, T, H, KV, stream);
}

template <int HD, int NW>
void backward_nw(float* dq_acc, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* delta,
                 const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                 cudaStream_t stream, bool accumulate) {
  constexpr size_t bytes = bwd_smem<HD, NW>();
  MOE_CUDA_CHECK(
      cudaFuncSetAttribute(flash_bwd_kernel<HD, NW>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(unsigned(T / (16 * NW)), unsigned(B * KV));
  flash_bwd_kernel<HD, NW><<<grid, 32 * NW, bytes, stream>>>(dq_acc, dk, dv, dout, lse, delta, q, k, v, int(T),
                                                             int(H), int(KV), 1.0f / sqrtf(float(HD)), accumulate);
  MOE_CUDA_CHECK_LAUNCH();
}

template <int HD>
void backward_hd(float* dq_acc, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* delta,
                 const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                 cudaStream_t stream, FlashBlock block, bool accumulate) {
  if (use_128(block, T)) backward_nw<HD, 8>(dq_acc, dk, dv, dout, lse, delta, q, k, v, B, T, H, KV, stream, accumulate);
  else backward_nw<HD, 4>(dq_acc, dk, dv, dout, lse, delta, q, k, v, B, T, H, KV, stream, accumulate);
}

}  // namespace

bool flash_attention_supported(int64_t T, int64_t hd) { return T > 0 && T % kTile == 0 && (hd == 64 || hd == 128); }

void flash_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                             int64_t H, int64_t KV, int64_t hd, cudaStream_t stream, FlashBlock block) {
  check(T, H, KV, hd);
  if (B * H == 0) return;
  if (hd == 64) forward_hd<64>(out, lse, q, k, v, B, T, H, KV, stream, block);
  else forward_hd<128>(out, lse, q, k, v, B, T, H, KV, stream, block);
}

void flash_attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out, const float* lse,
                              const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T, int64_t H, int64_t KV,
                              int64_t hd, cudaStream_t stream, FlashBlock block, bool accumulate) {
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
  if (hd == 64) backward_hd<64>(dq_acc, dk, dv, dout, lse, delta, q, k, v, B, T, H, KV, stream, block, accumulate);
  else backward_hd<128>(dq_acc, dk, dv, dout, lse, delta, q, k, v, B, T, H, KV, stream, block, accumulate);
  add_dq_kernel<<<grid_for(nq, 256, 8192), 256, 0, stream>>>(dq, dq_acc, nq, accumulate);
  MOE_CUDA_CHECK_LAUNCH();
  MOE_CUDA_CHECK(cudaFreeAsync(raw, stream));
}

}  // namespace moe::cuda
