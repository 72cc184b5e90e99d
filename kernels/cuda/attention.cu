// Attention from batched cuBLAS GEMMs and fused masked-softmax kernels (one warp per score row).
// GEMMs run over all (batch, head) pairs through device arrays of pointers, which is what lets a
// query head find its kv head (h / group) without copies. Pointer slot s = (g * B + b) * KV + kv
// for head h = kv * group + g: a slice of B*KV slots touches every kv head once, so the dk/dv
// accumulations run one slice per g and never write one matrix twice in a call.
// The GEMMs compute the full T x T products (the masked half included): simple, not yet optimal.
#include <cmath>
#include <string>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_rm.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kPtrArrays = 9;

template <typename T>
struct HeadBases {
  const T *q, *k, *v, *o;  // o: out in forward, dout in backward
  T *p, *s, *dq, *dk, *dv;  // p: att; s: score-gradient scratch
};

template <typename T>
struct HeadPtrs {
  const T **q, **k, **v, **o;
  T **p, **s, **dq, **dk, **dv;
};

template <typename T>
__global__ void head_ptrs_kernel(HeadPtrs<T> out, HeadBases<T> in, int64_t B, int64_t T_, int64_t H, int64_t KV,
                                 int64_t hd) {
  const int64_t n = B * H, group = H / KV;
  for (int64_t slot = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; slot < n; slot += int64_t(gridDim.x) * blockDim.x) {
    const int64_t kv = slot % KV, b = (slot / KV) % B, g = slot / (KV * B), h = kv * group + g;
    const int64_t qo = b * T_ * H * hd + h * hd, kvo = b * T_ * KV * hd + kv * hd, po = (b * H + h) * T_ * T_;
    out.q[slot] = in.q + qo;
    out.o[slot] = in.o + qo;
    out.k[slot] = in.k + kvo;
    out.v[slot] = in.v + kvo;
    out.p[slot] = in.p + po;
    out.s[slot] = in.s ? in.s + po : nullptr;
    out.dq[slot] = in.dq ? in.dq + qo : nullptr;
    out.dk[slot] = in.dk ? in.dk + kvo : nullptr;
    out.dv[slot] = in.dv ? in.dv + kvo : nullptr;
  }
}

// In place on scaled scores: p_j = exp(s_j - max) / sum for j <= t, 0 above the diagonal.
template <typename T>
__global__ void causal_softmax_kernel(T* att, int64_t rows, int64_t T_) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    T* p = att + r * T_;
    const int64_t t = r % T_;
    float mx = -INFINITY;
    for (int64_t j = lane; j <= t; j += 32) mx = fmaxf(mx, to_float(p[j]));
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int64_t j = lane; j <= t; j += 32) sum += expf(to_float(p[j]) - mx);
    const float inv = 1.0f / warp_sum(sum);
    for (int64_t j = lane; j < T_; j += 32) p[j] = from_float<T>(j <= t ? expf(to_float(p[j]) - mx) * inv : 0.0f);
  }
}

// ds_j = scale * p_j (dp_j - sum_i p_i dp_i), in place over dp; 0 above the diagonal.
template <typename T>
__global__ void causal_softmax_bwd_kernel(T* ds, const T* att, int64_t rows, int64_t T_, float scale) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    T* d = ds + r * T_;
    const T* p = att + r * T_;
    const int64_t t = r % T_;
    float pdp = 0.0f;
    for (int64_t j = lane; j <= t; j += 32) pdp += to_float(p[j]) * to_float(d[j]);
    pdp = warp_sum(pdp);
    for (int64_t j = lane; j < T_; j += 32)
      d[j] = from_float<T>(j <= t ? scale * to_float(p[j]) * (to_float(d[j]) - pdp) : 0.0f);
  }
}

// Device pointer arrays for all heads, freed by the caller with cudaFreeAsync(ptrs.q).
template <typename T>
HeadPtrs<T> make_head_ptrs(const HeadBases<T>& bases, int64_t B, int64_t T_, int64_t H, int64_t KV, int64_t hd,
                           cudaStream_t stream) {
  const int64_t n = B * H;
  void* raw = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&raw, sizeof(void*) * kPtrArrays * n, stream));
  T** a = static_cast<T**>(raw);
  HeadPtrs<T> p{};
  p.q = const_cast<const T**>(a);
  p.k = const_cast<const T**>(a + n);
  p.v = const_cast<const T**>(a + 2 * n);
  p.o = const_cast<const T**>(a + 3 * n);
  p.p = a + 4 * n;
  p.s = a + 5 * n;
  p.dq = a + 6 * n;
  p.dk = a + 7 * n;
  p.dv = a + 8 * n;
  head_ptrs_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, bases, B, T_, H, KV, hd);
  MOE_CUDA_CHECK_LAUNCH();
  return p;
}

void check_shapes(int64_t H, int64_t KV) {
  MOE_CUDA_REQUIRE(KV > 0 && H % KV == 0, "attention: n_heads " + std::to_string(H) +
                                               " must be a multiple of n_kv_heads " + std::to_string(KV));
}

unsigned softmax_blocks(int64_t rows) { return grid_for(rows, kThreads / 32); }

template <typename T>
void forward(T* out, T* att, const T* q, const T* k, const T* v, int64_t B, int64_t T_, int64_t H, int64_t KV,
             int64_t hd, cudaStream_t stream) {
  check_shapes(H, KV);
  const int64_t BH = B * H;
  if (BH == 0 || T_ == 0) return;
  cublasHandle_t h = blas_context(stream).blas;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  HeadPtrs<T> p = make_head_ptrs<T>({q, k, v, out, att, nullptr, nullptr, nullptr, nullptr}, B, T_, H, KV, hd, stream);
  gemm_rm_batched<T>(h, false, true, T_, T_, hd, scale, p.q, H * hd, p.k, KV * hd, 0.0f, p.p, T_, BH);
  causal_softmax_kernel<T><<<softmax_blocks(BH * T_), kThreads, 0, stream>>>(att, BH * T_, T_);
  MOE_CUDA_CHECK_LAUNCH();
  gemm_rm_batched<T>(h, false, false, T_, hd, T_, 1.0f, p.p, T_, p.v, KV * hd, 0.0f,
                     const_cast<T**>(p.o), H * hd, BH);
  MOE_CUDA_CHECK(cudaFreeAsync(p.q, stream));
}

template <typename T>
void backward(T* dq, T* dk, T* dv, const T* dout, const T* att, const T* q, const T* k, const T* v, int64_t B,
              int64_t T_, int64_t H, int64_t KV, int64_t hd, cudaStream_t stream) {
  check_shapes(H, KV);
  const int64_t BH = B * H, BKV = B * KV, group = H / KV, qC = H * hd, kvC = KV * hd;
  if (BH == 0 || T_ == 0 || (!dq && !dk && !dv)) return;
  cublasHandle_t h = blas_context(stream).blas;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  void* ds_raw = nullptr;
  if (dq || dk) MOE_CUDA_CHECK(cudaMallocAsync(&ds_raw, sizeof(T) * BH * T_ * T_, stream));
  T* ds = static_cast<T*>(ds_raw);
  HeadPtrs<T> p = make_head_ptrs<T>({q, k, v, dout, const_cast<T*>(att), ds, dq, dk, dv}, B, T_, H, KV, hd, stream);
  if (ds) {
    gemm_rm_batched<T>(h, false, true, T_, T_, hd, 1.0f, p.o, qC, p.v, kvC, 0.0f, p.s, T_, BH);  // dp
    causal_softmax_bwd_kernel<T><<<softmax_blocks(BH * T_), kThreads, 0, stream>>>(ds, att, BH * T_, T_, scale);
    MOE_CUDA_CHECK_LAUNCH();
  }
  if (dq) gemm_rm_batched<T>(h, false, false, T_, hd, T_, 1.0f, p.s, T_, p.k, kvC, 1.0f, p.dq, qC, BH);
  for (int64_t g = 0; g < group; ++g) {
    const int64_t s0 = g * BKV;
    if (dk)
      gemm_rm_batched<T>(h, true, false, T_, hd, T_, 1.0f, p.s + s0, T_, p.q + s0, qC, 1.0f, p.dk + s0, kvC, BKV);
    if (dv)
      gemm_rm_batched<T>(h, true, false, T_, hd, T_, 1.0f, p.p + s0, T_, p.o + s0, qC, 1.0f, p.dv + s0, kvC, BKV);
  }
  MOE_CUDA_CHECK(cudaFreeAsync(p.q, stream));
  if (ds_raw) MOE_CUDA_CHECK(cudaFreeAsync(ds_raw, stream));
}

}  // namespace

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t H, int64_t KV, int64_t hd, cudaStream_t stream) {
  forward(out, att, q, k, v, B, T, H, KV, hd, stream);
}
void attention_forward(bf16* out, bf16* att, const bf16* q, const bf16* k, const bf16* v, int64_t B, int64_t T,
                       int64_t H, int64_t KV, int64_t hd, cudaStream_t stream) {
  forward(out, att, q, k, v, B, T, H, KV, hd, stream);
}
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd,
                        cudaStream_t stream) {
  backward(dq, dk, dv, dout, att, q, k, v, B, T, H, KV, hd, stream);
}
void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* att, const bf16* q, const bf16* k,
                        const bf16* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd, cudaStream_t stream) {
  backward(dq, dk, dv, dout, att, q, k, v, B, T, H, KV, hd, stream);
}

}  // namespace moe::cuda
