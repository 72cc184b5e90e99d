// GPU kernel benchmark: time and TFLOP/s of the main ops at the bench_cpu shape and a larger one,
// fp32 and bf16. Plain main (no Google Benchmark on the device machine); CUDA events, median of
// `kIters` runs after warm-up.
//   build-gpu/bench_gpu_ops            (scripts/gpu_check.sh runs it)
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <type_traits>
#include <vector>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/permute.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/routing.cuh"

namespace moe::cuda {
namespace {

constexpr int kWarmup = 2, kIters = 10;

struct Shape {
  const char* name;
  int64_t B, T, D, H, KV, hd, E, Fe, k;
  int64_t N() const { return B * T; }
};

__global__ void fill_kernel(float* x, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    x[i] = scale * (static_cast<float>(h & 0xffffff) / 16777216.0f - 0.5f);
  }
}
__global__ void to_bf16_kernel(__nv_bfloat16* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

template <typename T>
T* random_buffer(int64_t n, uint32_t seed, float scale = 1.0f) {
  float* f = nullptr;
  MOE_CUDA_CHECK(cudaMalloc(&f, sizeof(float) * n));
  fill_kernel<<<1024, 256>>>(f, n, seed, scale);
  MOE_CUDA_CHECK_LAUNCH();
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    T* y = nullptr;
    MOE_CUDA_CHECK(cudaMalloc(&y, sizeof(T) * n));
    to_bf16_kernel<<<1024, 256>>>(y, f, n);
    MOE_CUDA_CHECK_LAUNCH();
    MOE_CUDA_CHECK(cudaFree(f));
    return y;
  }
}

// Median milliseconds of fn over kIters runs.
double time_ms(const std::function<void()>& fn) {
  cudaEvent_t a, b;
  MOE_CUDA_CHECK(cudaEventCreate(&a));
  MOE_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < kWarmup; ++i) fn();
  std::vector<float> ms(kIters);
  for (int i = 0; i < kIters; ++i) {
    MOE_CUDA_CHECK(cudaEventRecord(a));
    fn();
    MOE_CUDA_CHECK(cudaEventRecord(b));
    MOE_CUDA_CHECK(cudaEventSynchronize(b));
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
  }
  MOE_CUDA_CHECK(cudaEventDestroy(a));
  MOE_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[kIters / 2];
}

void report(const Shape& s, const char* dtype, const char* op, double ms, double flops) {
  std::printf("%-8s %-5s %-34s %9.3f ms", s.name, dtype, op, ms);
  if (flops > 0) std::printf("  %8.2f TFLOP/s", flops / (ms * 1e-3) / 1e12);
  std::printf("\n");
}

template <typename T>
void bench_gemms(const Shape& s, const char* dt) {
  const int64_t N = s.N(), D = s.D, M = N * s.k, E = s.E, Fe = s.Fe;
  T *x = random_buffer<T>(N * D, 1), *w = random_buffer<T>(4 * D * D, 2, 0.05f), *out = random_buffer<T>(N * 4 * D, 3);
  T *dx = random_buffer<T>(N * D, 4), *dw = random_buffer<T>(4 * D * D, 5);
  report(s, dt, "matmul fwd N x D -> 4D", time_ms([&] { matmul_forward(out, x, w, N, D, 4 * D, false, nullptr); }),
         2.0 * N * D * 4 * D);
  report(s, dt, "matmul bwd N x D -> 4D", time_ms([&] { matmul_backward(dx, dw, out, x, w, N, D, 4 * D, nullptr); }),
         4.0 * N * D * 4 * D);
  // Grouped expert GEMM (w1: D -> Fe) with an even split of the M = N*k routed rows.
  std::vector<int64_t> offsets(E + 1);
  for (int64_t e = 0; e <= E; ++e) offsets[e] = M * e / E;
  T *xe = random_buffer<T>(M * D, 6), *we = random_buffer<T>(E * Fe * D, 7, 0.05f), *he = random_buffer<T>(M * Fe, 8);
  T *dxe = random_buffer<T>(M * D, 9), *dwe = random_buffer<T>(E * Fe * D, 10);
  report(s, dt, "grouped GEMM fwd (all experts)",
         time_ms([&] { grouped_matmul_forward(he, xe, we, offsets.data(), E, D, Fe, nullptr); }), 2.0 * M * D * Fe);
  report(s, dt, "grouped GEMM bwd (all experts)",
         time_ms([&] { grouped_matmul_backward(dxe, dwe, he, xe, we, offsets.data(), E, D, Fe, nullptr); }),
         4.0 * M * D * Fe);
  for (T* p : {x, w, out, dx, dw, xe, we, he, dxe, dwe}) MOE_CUDA_CHECK(cudaFree(p));
}

template <typename T>
void bench_attention(const Shape& s, const char* dt) {
  const int64_t N = s.N(), qC = s.H * s.hd, kvC = s.KV * s.hd;
  T *q = random_buffer<T>(N * qC, 11), *k = random_buffer<T>(N * kvC, 12), *v = random_buffer<T>(N * kvC, 13);
  T *out = random_buffer<T>(N * qC, 14), *att = random_buffer<T>(s.B * s.H * s.T * s.T, 15);
  T *dq = random_buffer<T>(N * qC, 16), *dk = random_buffer<T>(N * kvC, 17), *dv = random_buffer<T>(N * kvC, 18);
  // Useful (causal) FLOPs: half of the two T x T x hd products per head.
  const double fwd = 2.0 * s.B * s.H * s.T * s.T * s.hd;
  report(s, dt, "attention fwd", time_ms([&] { attention_forward(out, att, q, k, v, s.B, s.T, s.H, s.KV, s.hd, nullptr); }),
         fwd);
  report(s, dt, "attention bwd",
         time_ms([&] { attention_backward(dq, dk, dv, out, att, q, k, v, s.B, s.T, s.H, s.KV, s.hd, nullptr); }),
         2.0 * fwd);
  for (T* p : {q, k, v, out, att, dq, dk, dv}) MOE_CUDA_CHECK(cudaFree(p));
}

void bench_routing(const Shape& s) {
  const int64_t N = s.N(), E = s.E, k = s.k, M = N * k, D = s.D;
  float *logits = random_buffer<float>(N * E, 19, 4.0f), *probs = random_buffer<float>(N * E, 20);
  float *w = random_buffer<float>(M, 21), *x = random_buffer<float>(N * D, 22), *xp = random_buffer<float>(M * D, 23);
  int32_t *idx, *slots, *rows;
  int64_t* offsets;
  MOE_CUDA_CHECK(cudaMalloc(&idx, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&slots, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&rows, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&offsets, sizeof(int64_t) * (E + 1)));
  report(s, "fp32", "router (softmax+top-k+renorm)",
         time_ms([&] { router_topk_forward(probs, idx, w, logits, nullptr, N, E, k, true, 1.0f, nullptr); }), 0);
  report(s, "fp32", "permute by expert (CUB)",
         time_ms([&] { permute_by_expert(slots, rows, offsets, idx, M, k, E, nullptr); }), 0);
  report(s, "fp32", "gather rows (dispatch)", time_ms([&] { gather_rows(xp, x, rows, M, D, nullptr); }), 0);
  report(s, "fp32", "scatter-add rows (combine)",
         time_ms([&] { scatter_add_rows(x, xp, rows, w, M, D, nullptr); }), 0);
  for (float* p : {logits, probs, w, x, xp}) MOE_CUDA_CHECK(cudaFree(p));
  for (int32_t* p : {idx, slots, rows}) MOE_CUDA_CHECK(cudaFree(p));
  MOE_CUDA_CHECK(cudaFree(offsets));
}

}  // namespace
}  // namespace moe::cuda

int main() {
  using namespace moe::cuda;
  if (device_count() == 0) {
    std::printf("bench_gpu_ops: no CUDA device, nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  MOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  // bench_cpu: configs/bench_cpu.yaml's shape (docs/PERFORMANCE.md); large: a 2k-context MoE layer.
  const Shape shapes[] = {{"bench_cpu", 4, 256, 512, 8, 8, 64, 8, 1024, 2},
                          {"large", 4, 2048, 2048, 16, 4, 128, 64, 1024, 8}};
  for (const Shape& s : shapes) {
    bench_gemms<float>(s, "fp32");
    bench_gemms<__nv_bfloat16>(s, "bf16");
    bench_attention<float>(s, "fp32");
    bench_attention<__nv_bfloat16>(s, "bf16");
    bench_routing(s);
  }
  return 0;
}
