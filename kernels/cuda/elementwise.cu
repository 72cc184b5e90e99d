// Elementwise kernels: grid-stride loops, one element per thread per step; SwiGLU moves 16 bytes
// per load and store when every pointer is 16-byte aligned (the tail runs the scalar kernel).
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void add_kernel(float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    a[i] += b[i];
}

__global__ void scale_kernel(float* a, float s, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    a[i] *= s;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
__global__ void swiglu_fwd_kernel(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(a[i]);
    out[i] = from_float<T>(x * sigmoid(x) * to_float(b[i]));
  }
}

// d silu(a)/da = sig * (1 + a * (1 - sig)); Acc: += (else =)
template <typename T, bool Acc>
__global__ void swiglu_bwd_kernel(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(a[i]), g = to_float(dout[i]), sig = sigmoid(x);
    if (da) da[i] = from_float<T>((Acc ? to_float(da[i]) : 0.0f) + g * to_float(b[i]) * sig * (1.0f + x * (1.0f - sig)));
    if (db) db[i] = from_float<T>((Acc ? to_float(db[i]) : 0.0f) + g * x * sig);
  }
}

// The same on vectors of 16 bytes (nv of them): identical arithmetic per element.
template <typename T>
__global__ void swiglu_fwd_vec_kernel(T* out, const T* a, const T* b, int64_t nv) {
  constexpr int V = 16 / sizeof(T);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nv; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 ra = reinterpret_cast<const uint4*>(a)[i], rb = reinterpret_cast<const uint4*>(b)[i];
    uint4 ro;
    const T* ea = reinterpret_cast<const T*>(&ra);
    const T* eb = reinterpret_cast<const T*>(&rb);
    T* eo = reinterpret_cast<T*>(&ro);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float x = to_float(ea[j]);
      eo[j] = from_float<T>(x * sigmoid(x) * to_float(eb[j]));
    }
    reinterpret_cast<uint4*>(out)[i] = ro;
  }
}

template <typename T, bool Acc>
__global__ void swiglu_bwd_vec_kernel(T* da, T* db, const T* dout, const T* a, const T* b, int64_t nv) {
  constexpr int V = 16 / sizeof(T);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nv; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 ra = reinterpret_cast<const uint4*>(a)[i], rb = reinterpret_cast<const uint4*>(b)[i];
    const uint4 rg = reinterpret_cast<const uint4*>(dout)[i];
    uint4 rda = Acc && da ? reinterpret_cast<const uint4*>(da)[i] : uint4{};  // zero bits: 0.0f / bf16 0
    uint4 rdb = Acc && db ? reinterpret_cast<const uint4*>(db)[i] : uint4{};
    const T* ea = reinterpret_cast<const T*>(&ra);
    const T* eb = reinterpret_cast<const T*>(&rb);
    const T* eg = reinterpret_cast<const T*>(&rg);
    T* eda = reinterpret_cast<T*>(&rda);
    T* edb = reinterpret_cast<T*>(&rdb);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float x = to_float(ea[j]), g = to_float(eg[j]), sig = sigmoid(x);
      eda[j] = from_float<T>(to_float(eda[j]) + g * to_float(eb[j]) * sig * (1.0f + x * (1.0f - sig)));
      edb[j] = from_float<T>(to_float(edb[j]) + g * x * sig);
    }
    if (da) reinterpret_cast<uint4*>(da)[i] = rda;
    if (db) reinterpret_cast<uint4*>(db)[i] = rdb;
  }
}

bool aligned16(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

template <typename T>
void swiglu_fwd(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int V = 16 / sizeof(T);
  const int64_t nv = aligned16({out, a, b}) ? n / V : 0, done = nv * V;
  if (nv > 0) {
    swiglu_fwd_vec_kernel<T><<<grid_for(nv, kThreads), kThreads, 0, stream>>>(out, a, b, nv);
    MOE_CUDA_CHECK_LAUNCH();
  }
  if (done < n) {
    swiglu_fwd_kernel<T><<<grid_for(n - done, kThreads), kThreads, 0, stream>>>(out + done, a + done, b + done, n - done);
    MOE_CUDA_CHECK_LAUNCH();
  }
}

template <typename T, bool Acc>
void swiglu_bwd(T* da, T* db, const T* dout, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0 || (!da && !db)) return;
  constexpr int V = 16 / sizeof(T);
  const int64_t nv = aligned16({da, db, dout, a, b}) ? n / V : 0, done = nv * V;  // null is aligned
  if (nv > 0) {
    swiglu_bwd_vec_kernel<T, Acc><<<grid_for(nv, kThreads), kThreads, 0, stream>>>(da, db, dout, a, b, nv);
    MOE_CUDA_CHECK_LAUNCH();
  }
  if (done < n) {
    swiglu_bwd_kernel<T, Acc><<<grid_for(n - done, kThreads), kThreads, 0, stream>>>(
        da ? da + done : nullptr, db ? db + done : nullptr, dout + done, a + done, b + done, n - done);
    MOE_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void add_inplace(float* a, const float* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(a, b, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void scale_inplace(float* a, float s, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(a, s, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void swiglu_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  swiglu_fwd(out, a, b, n, stream);
}
void swiglu_forward(bf16* out, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream) {
  swiglu_fwd(out, a, b, n, stream);
}
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, int64_t n,
                     cudaStream_t stream, bool accumulate) {
  if (accumulate) swiglu_bwd<float, true>(da, db, dout, a, b, n, stream);
  else swiglu_bwd<float, false>(da, db, dout, a, b, n, stream);
}
void swiglu_backward(bf16* da, bf16* db, const bf16* dout, const bf16* a, const bf16* b, int64_t n,
                     cudaStream_t stream, bool accumulate) {
  if (accumulate) swiglu_bwd<bf16, true>(da, db, dout, a, b, n, stream);
  else swiglu_bwd<bf16, false>(da, db, dout, a, b, n, stream);
}

}  // namespace moe::cuda
