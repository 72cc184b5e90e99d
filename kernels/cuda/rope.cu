// RoPE: a table kernel writes cos/sin [T, hd/2] (double math, float storage) into a stream-ordered
// scratch buffer; the rotation kernel gives one thread per (row, head, pair).
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rope.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rope_table_kernel(float* cos_t, float* sin_t, int64_t T, int64_t half, int64_t head_dim,
                                  double theta) {
  const int64_t n = T * half;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = k / half, i = k % half;
    const double inv_freq = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    const double angle = static_cast<double>(t) * inv_freq;
    cos_t[k] = static_cast<float>(cos(angle));
    sin_t[k] = static_cast<float>(sin(angle));
  }
}

// forward: y0 = x0 c - x1 s, y1 = x1 c + x0 s;  backward (transpose): d0 += g0 c + g1 s, d1 += g1 c - g0 s
// (= when not accumulating). Each thread reads its pair before writing it: out may alias inp.
template <bool kBackward, typename V>
__global__ void rope_apply_kernel(V* out, const V* inp, const float* cos_t, const float* sin_t, int64_t rows,
                                  int64_t T, int64_t n_heads, int64_t half, bool accumulate) {
  const int64_t hd = 2 * half, C = n_heads * hd, n = rows * n_heads * half;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = k % half, h = (k / half) % n_heads, row = k / (half * n_heads);
    const float c = cos_t[(row % T) * half + i], s = sin_t[(row % T) * half + i];
    const int64_t base = row * C + h * hd;
    const float x0 = to_float(inp[base + i]), x1 = to_float(inp[base + i + half]);
    if (kBackward && accumulate) {
      out[base + i] = from_float<V>(to_float(out[base + i]) + (x0 * c + x1 * s));
      out[base + i + half] = from_float<V>(to_float(out[base + i + half]) + (x1 * c - x0 * s));
    } else if (kBackward) {
      out[base + i] = from_float<V>(x0 * c + x1 * s);
      out[base + i + half] = from_float<V>(x1 * c - x0 * s);
    } else {
      out[base + i] = from_float<V>(x0 * c - x1 * s);
      out[base + i + half] = from_float<V>(x1 * c + x0 * s);
    }
  }
}

template <bool kBackward, typename V>
void rope(V* out, const V* inp, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim, float theta,
          cudaStream_t stream, bool accumulate = true) {
  MOE_CUDA_REQUIRE(head_dim % 2 == 0, "rope: head_dim must be even, got " + std::to_string(head_dim));
  const int64_t half = head_dim / 2, n = B * T * n_heads * half;
  if (n == 0) return;
  void* table = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&table, sizeof(float) * 2 * T * half, stream));
  float* cos_t = static_cast<float*>(table);
  float* sin_t = cos_t + T * half;
  rope_table_kernel<<<grid_for(T * half, kThreads), kThreads, 0, stream>>>(cos_t, sin_t, T, half, head_dim,
                                                                          static_cast<double>(theta));
  MOE_CUDA_CHECK_LAUNCH();
  rope_apply_kernel<kBackward, V><<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, inp, cos_t, sin_t, B * T, T,
                                                                                n_heads, half, accumulate);
  MOE_CUDA_CHECK_LAUNCH();
  MOE_CUDA_CHECK(cudaFreeAsync(table, stream));
}

// One row at absolute position pos, in place: thread = (head, pair); angle in double like the CPU.
__global__ void rope_position_kernel(float* x, int64_t pos, int64_t n_heads, int64_t half, int64_t head_dim,
                                    double theta) {
  const int64_t n = n_heads * half;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t h = k / half, i = k % half;
    const double angle = static_cast<double>(pos) * pow(theta, -2.0 * static_cast<double>(i) / double(head_dim));
    const float c = static_cast<float>(cos(angle)), s = static_cast<float>(sin(angle));
    float* y = x + h * head_dim;
    const float x0 = y[i], x1 = y[i + half];
    y[i] = x0 * c - x1 * s;
    y[i + half] = x1 * c + x0 * s;
  }
}

}  // namespace

void rope_position_forward(float* x, int64_t pos, int64_t n_heads, int64_t head_dim, float theta,
                           cudaStream_t stream) {
  MOE_CUDA_REQUIRE(head_dim % 2 == 0, "rope: head_dim must be even, got " + std::to_string(head_dim));
  const int64_t half = head_dim / 2;
  if (n_heads * half == 0) return;
  rope_position_kernel<<<grid_for(n_heads * half, kThreads), kThreads, 0, stream>>>(x, pos, n_heads, half, head_dim,
                                                                                    static_cast<double>(theta));
  MOE_CUDA_CHECK_LAUNCH();
}

void rope_forward(float* out, const float* inp, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim, float theta,
                  cudaStream_t stream) {
  rope<false>(out, inp, B, T, n_heads, head_dim, theta, stream);
}

void rope_backward(float* dinp, const float* dout, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                   float theta, cudaStream_t stream, bool accumulate) {
  rope<true>(dinp, dout, B, T, n_heads, head_dim, theta, stream, accumulate);
}

void rope_forward(bf16* out, const bf16* inp, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim, float theta,
                  cudaStream_t stream) {
  rope<false>(out, inp, B, T, n_heads, head_dim, theta, stream);
}

void rope_backward(bf16* dinp, const bf16* dout, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
                   float theta, cudaStream_t stream, bool accumulate) {
  rope<true>(dinp, dout, B, T, n_heads, head_dim, theta, stream, accumulate);
}

}  // namespace moe::cuda
