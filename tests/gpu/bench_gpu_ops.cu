// GPU kernel benchmark: time and TFLOP/s of the main ops at the bench_cpu shape and a larger one,
// fp32 and bf16. Plain main (no Google Benchmark on the device machine); CUDA events, median of
// `kIters` runs after warm-up.
//   build-gpu/bench_gpu_ops            (scripts/gpu_check.sh runs it)
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/combine.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/flash_attention.cuh"
#include "kernels/cuda/gemm_rm.cuh"
#include "kernels/cuda/router_grad.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/expert_layout.cuh"
#include "kernels/cuda/permute.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/routing.cuh"
#include "moe/expert_padding.h"

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
  const ExpertBlocks one = expert_blocks(offsets.data(), E, int64_t(1) << 40, 1.0);  // one block each
  const int64_t R = std::max(M, one.rows());
  T *xe = random_buffer<T>(R * D, 6), *we = random_buffer<T>(E * Fe * D, 7, 0.05f), *he = random_buffer<T>(R * Fe, 8);
  T *dxe = random_buffer<T>(R * D, 9), *dwe = random_buffer<T>(E * Fe * D, 10);
  float* dwe32 = random_buffer<float>(E * Fe * D, 11);
  report(s, dt, "grouped GEMM fwd (all experts)",
         time_ms([&] { grouped_matmul_forward(he, xe, we, offsets.data(), E, D, Fe, nullptr); }), 2.0 * M * D * Fe);
  // Reference only (the model never does this): the same expert GEMMs issued one by one.
  report(s, dt, "expert GEMMs one by one (reference)", time_ms([&] {
           for (int64_t e = 0; e < E; ++e)
             matmul_forward(he + offsets[e] * Fe, xe + offsets[e] * D, we + e * Fe * D, offsets[e + 1] - offsets[e], D,
                            Fe, false, nullptr);
         }),
         2.0 * M * D * Fe);
  report(s, dt, "grouped GEMM bwd (all experts)",
         time_ms([&] { grouped_matmul_backward(dxe, dwe, he, xe, we, offsets.data(), E, D, Fe, nullptr); }),
         4.0 * M * D * Fe);
  // The blocked layout, one block per expert (FLOPs counted on the routed rows).
  report(s, dt, "blocked GEMM fwd (strided batched)",
         time_ms([&] { blocked_matmul_forward(he, xe, we, one.start.data(), E, one.block, D, Fe, nullptr); }),
         2.0 * M * D * Fe);
  report(s, dt, "blocked GEMM bwd (strided)", time_ms([&] {
           blocked_matmul_backward(dxe, dwe, nullptr, he, xe, we, one.start.data(), E, one.block, D, Fe, nullptr);
         }),
         4.0 * M * D * Fe);
  report(s, dt, "blocked GEMM bwd (strided, fp32 dW)", time_ms([&] {
           blocked_matmul_backward(dxe, nullptr, dwe32, he, xe, we, one.start.data(), E, one.block, D, Fe, nullptr);
         }),
         4.0 * M * D * Fe);
  // Four blocks per expert (the skewed-load form: batched calls, one per block index for dW).
  ExpertBlocks four = one;
  four.block = one.block / 4 / kExpertPadRows * kExpertPadRows;
  if (four.block > 0) {
    for (int64_t e = 0; e <= E; ++e) four.start[size_t(e)] = one.start[size_t(e)] / one.block * 4 * four.block;
    const int64_t R4 = four.start.back();
    if (R4 <= R) {
      report(s, dt, "blocked GEMM fwd (4 blocks/expert)",
             time_ms([&] { blocked_matmul_forward(he, xe, we, four.start.data(), E, four.block, D, Fe, nullptr); }),
             2.0 * M * D * Fe);
      report(s, dt, "blocked GEMM bwd (4 blocks/expert)", time_ms([&] {
               blocked_matmul_backward(dxe, nullptr, dwe32, he, xe, we, four.start.data(), E, four.block, D, Fe,
                                       nullptr);
             }),
             4.0 * M * D * Fe);
      // The same 4 E GEMM shapes as one strided-batched call (one weight for all): separates the
      // cost of the pointer-array call from that of the smaller GEMMs (reference only).
      cublasHandle_t h = blas_context(nullptr).blas;
      report(s, dt, "4-block shapes, strided batched (reference)", time_ms([&] {
               gemm_rm_strided<T>(h, false, true, four.block, Fe, D, 1.0f, xe, D, four.block * D, we, D, 0, 0.0f, he,
                                  Fe, four.block * Fe, 4 * E);
             }),
             2.0 * M * D * Fe);
    }
  }
  MOE_CUDA_CHECK(cudaFree(dwe32));
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
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (flash_attention_supported(s.T, s.hd)) {
      float* lse = random_buffer<float>(s.B * s.H * s.T, 19);
      for (const auto block : {FlashBlock::k64, FlashBlock::k128}) {
        if (block == FlashBlock::k128 && s.T % 128 != 0) continue;
        const std::string rows = block == FlashBlock::k64 ? " (64-row blocks)" : " (128-row blocks)";
        report(s, dt, ("flash attention fwd" + rows).c_str(), time_ms([&] {
                 flash_attention_forward(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, nullptr, block);
               }),
               fwd);
        report(s, dt, ("flash attention bwd" + rows).c_str(), time_ms([&] {
                 flash_attention_backward(dq, dk, dv, out, out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, nullptr,
                                          block);
               }),
               2.0 * fwd);
      }
      MOE_CUDA_CHECK(cudaFree(lse));
    }
  }
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
  const char* permute_op =
      E <= kCountingSortMaxExperts ? "permute by expert (counting sort)" : "permute by expert (CUB radix)";
  report(s, "fp32", permute_op,
         time_ms([&] { permute_by_expert(slots, rows, offsets, idx, M, k, E, nullptr); }), 0);
  report(s, "fp32", "gather rows (dispatch)", time_ms([&] { gather_rows(xp, x, rows, M, D, nullptr); }), 0);
  report(s, "fp32", "scatter-add rows (combine)",
         time_ms([&] { scatter_add_rows(x, xp, rows, w, M, D, nullptr); }), 0);
  for (float* p : {logits, probs, w, x, xp}) MOE_CUDA_CHECK(cudaFree(p));
  for (int32_t* p : {idx, slots, rows}) MOE_CUDA_CHECK(cudaFree(p));
  MOE_CUDA_CHECK(cudaFree(offsets));
}

// The MoE combine (bf16 expert rows into the fp32 residual, weighted) and the backward's
// un-permutation (bf16 rows into a fresh fp32 buffer, unweighted) on a random top-k routing's
// compact layout: the atomic scatter-add against combine_rows' gather-sum over the inverse
// (slot_row), and the inverse itself.
void bench_combine(const Shape& s) {
  using bf = __nv_bfloat16;
  const int64_t N = s.N(), E = s.E, k = s.k, M = N * k, D = s.D;
  float *logits = random_buffer<float>(N * E, 101, 4.0f), *probs = random_buffer<float>(N * E, 102);
  float *w = random_buffer<float>(M, 103), *ws = random_buffer<float>(M, 104), *x = random_buffer<float>(N * D, 105);
  bf* ye = random_buffer<bf>(M * D, 106);
  int32_t *idx, *slots, *rows, *slot_row;
  int64_t* offsets;
  for (int32_t** p : {&idx, &slots, &rows, &slot_row}) MOE_CUDA_CHECK(cudaMalloc(p, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&offsets, sizeof(int64_t) * (E + 1)));
  router_topk_forward(probs, idx, w, logits, nullptr, N, E, k, true, 1.0f, nullptr);
  permute_by_expert(slots, rows, offsets, idx, M, k, E, nullptr);
  gather_rows(ws, w, slots, M, 1, nullptr);  // scatter_add_rows' weights are per layout row
  invert_permutation(slot_row, slots, M, nullptr);
  report(s, "bf16", "combine: scatter-add rows (atomic)",
         time_ms([&] { scatter_add_rows(x, ye, rows, ws, M, D, nullptr); }), 0);
  report(s, "bf16", "combine: combine_rows (gather-sum)",
         time_ms([&] { combine_rows(x, x, ye, slot_row, w, N, k, D, nullptr); }), 0);
  report(s, "bf16", "unpermute: zero + scatter-add rows", time_ms([&] {
           MOE_CUDA_CHECK(cudaMemsetAsync(x, 0, sizeof(float) * N * D, nullptr));
           scatter_add_rows(x, ye, rows, nullptr, M, D, nullptr);
         }),
         0);
  report(s, "bf16", "unpermute: combine_rows, overwrite",
         time_ms([&] { combine_rows(x, nullptr, ye, slot_row, nullptr, N, k, D, nullptr); }), 0);
  report(s, "int32", "slot_row (invert_permutation)", time_ms([&] { invert_permutation(slot_row, slots, M, nullptr); }),
         0);
  for (float* p : {logits, probs, w, ws, x}) MOE_CUDA_CHECK(cudaFree(p));
  MOE_CUDA_CHECK(cudaFree(ye));
  for (int32_t* p : {idx, slots, rows, slot_row}) MOE_CUDA_CHECK(cudaFree(p));
  MOE_CUDA_CHECK(cudaFree(offsets));
}

// ---- the issue's headline ratios ------------------------------------------------------------
// Device-to-device copy bandwidth, counting bytes read and written (the reference for memory-bound
// kernels).
double copy_bandwidth() {
  const int64_t n = int64_t(1) << 28;  // 1 GiB of floats... in bytes: 256 Mi floats = 1 GiB
  float *a = nullptr, *b = nullptr;
  MOE_CUDA_CHECK(cudaMalloc(&a, sizeof(float) * n));
  MOE_CUDA_CHECK(cudaMalloc(&b, sizeof(float) * n));
  MOE_CUDA_CHECK(cudaMemset(a, 0, sizeof(float) * n));
  const double ms = time_ms([&] { MOE_CUDA_CHECK(cudaMemcpyAsync(b, a, sizeof(float) * n, cudaMemcpyDeviceToDevice)); });
  MOE_CUDA_CHECK(cudaFree(a));
  MOE_CUDA_CHECK(cudaFree(b));
  return 2.0 * sizeof(float) * n / (ms * 1e-3);
}

double bf16_gemm_peak() {
  const int64_t n = 8192;
  using bf = __nv_bfloat16;
  bf *a = random_buffer<bf>(n * n, 31), *b = random_buffer<bf>(n * n, 32), *c = random_buffer<bf>(n * n, 33);
  const double ms = time_ms([&] { matmul_forward(c, a, b, n, n, n, false, nullptr); });
  for (bf* p : {a, b, c}) MOE_CUDA_CHECK(cudaFree(p));
  return 2.0 * n * n * n / (ms * 1e-3);
}

// Router (fp32 softmax + top-k), permutation by expert and the bf16 dispatch gather, as bytes moved
// per second: logits read, probs/idx/weights written, ids read and slots/rows written by the
// permutation, and the gathered rows read and written.
void bench_router_permute(const Shape& s, double copy_bw) {
  using bf = __nv_bfloat16;
  const int64_t N = s.N(), E = s.E, k = s.k, M = N * k, D = s.D;
  float *logits = random_buffer<float>(N * E, 41, 4.0f), *probs = random_buffer<float>(N * E, 42);
  float* w = random_buffer<float>(M, 43);
  bf *x = random_buffer<bf>(N * D, 44), *xp = random_buffer<bf>(M * D, 45);
  int32_t *idx, *slots, *rows;
  int64_t* offsets;
  MOE_CUDA_CHECK(cudaMalloc(&idx, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&slots, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&rows, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&offsets, sizeof(int64_t) * (E + 1)));
  const double ms = time_ms([&] {
    router_topk_forward(probs, idx, w, logits, nullptr, N, E, k, true, 1.0f, nullptr);
    permute_by_expert(slots, rows, offsets, idx, M, k, E, nullptr);
    gather_rows(xp, x, rows, M, D, nullptr);
  });
  const double bytes = 4.0 * N * E * 2 + 8.0 * M + 4.0 * M + 8.0 * M + 2.0 * 2 * M * D;
  const double bw = bytes / (ms * 1e-3);
  std::printf("%-8s router+permute+dispatch (bf16 rows): %.3f ms, %.0f GB/s = %.0f%% of copy bandwidth\n", s.name, ms,
              bw / 1e9, 100 * bw / copy_bw);
  for (float* p : {logits, probs, w}) MOE_CUDA_CHECK(cudaFree(p));
  for (bf* p : {x, xp}) MOE_CUDA_CHECK(cudaFree(p));
  for (int32_t* p : {idx, slots, rows}) MOE_CUDA_CHECK(cudaFree(p));
  MOE_CUDA_CHECK(cudaFree(offsets));
}

// One MoE FFN layer forward + backward in bf16 (route, permute, dispatch, grouped SwiGLU experts,
// combine, and their backward incl. the router), against the dense SwiGLU FFN of equal FLOPs
// (hidden k * Fe on the N tokens) done with plain cuBLAS GEMMs.
// padding: train.gpu_expert_padding (0 = compact layout + grouped GEMM; moe/expert_padding.h).
void bench_moe_layer(const Shape& s, double padding) {
  using bf = __nv_bfloat16;
  const int64_t N = s.N(), E = s.E, k = s.k, M = N * k, D = s.D, Fe = s.Fe, Fd = k * Fe;
  const int64_t R = expert_buffer_rows(M, padding);  // rows of the expert buffers
  float *xn32 = random_buffer<float>(N * D, 51), *wr = random_buffer<float>(E * D, 52, 0.05f);
  float *logits = random_buffer<float>(N * E, 53), *probs = random_buffer<float>(N * E, 54);
  float *w = random_buffer<float>(M, 55), *ws = random_buffer<float>(R, 56), *lse = random_buffer<float>(N, 57);
  float *x = random_buffer<float>(N * D, 58), *dx = random_buffer<float>(N * D, 59), *dxn = random_buffer<float>(N * D, 60);
  float *dws = random_buffer<float>(R, 61), *dwslot = random_buffer<float>(M, 62), *dlog = random_buffer<float>(N * E, 63);
  float* dwr = random_buffer<float>(E * D, 64);
  float *dw1f = random_buffer<float>(E * Fe * D, 89), *dw2f = random_buffer<float>(E * D * Fe, 90);
  float* dw3f = random_buffer<float>(E * Fe * D, 91);
  bf *xn = random_buffer<bf>(N * D, 65), *xe = random_buffer<bf>(R * D, 66), *ye = random_buffer<bf>(R * D, 67);
  bf *w1 = random_buffer<bf>(E * Fe * D, 68, 0.05f), *w3 = random_buffer<bf>(E * Fe * D, 69, 0.05f);
  bf* w2 = random_buffer<bf>(E * D * Fe, 70, 0.05f);
  bf *h1 = random_buffer<bf>(R * Fe, 71), *h3 = random_buffer<bf>(R * Fe, 72), *act = random_buffer<bf>(R * Fe, 73);
  bf *dh1 = random_buffer<bf>(R * Fe, 74), *dh3 = random_buffer<bf>(R * Fe, 75), *dact = random_buffer<bf>(R * Fe, 76);
  bf *dxe = random_buffer<bf>(R * D, 77), *dw1 = random_buffer<bf>(E * Fe * D, 78), *dw3 = random_buffer<bf>(E * Fe * D, 79);
  bf* dw2 = random_buffer<bf>(E * D * Fe, 80);
  double* sums;
  int32_t *idx, *slots, *rows, *pslots, *prows, *slot_row;
  int64_t *offsets, *starts;
  MOE_CUDA_CHECK(cudaMalloc(&sums, sizeof(double) * (E + 2)));
  MOE_CUDA_CHECK(cudaMalloc(&idx, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&slot_row, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&slots, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&rows, sizeof(int32_t) * M));
  MOE_CUDA_CHECK(cudaMalloc(&pslots, sizeof(int32_t) * R));
  MOE_CUDA_CHECK(cudaMalloc(&prows, sizeof(int32_t) * R));
  MOE_CUDA_CHECK(cudaMalloc(&offsets, sizeof(int64_t) * (E + 1)));
  MOE_CUDA_CHECK(cudaMalloc(&starts, sizeof(int64_t) * (E + 1)));
  std::vector<int64_t> offs(E + 1);
  ExpertBlocks blocks;
  int64_t Ru = M;
  // As src/cuda/device_step.cpp runs it: route, permute, one host synchronisation, lay out, dispatch.
  auto expert_fwd = [&](bf* out, const bf* in, const bf* wt, int64_t I, int64_t O) {
    if (blocks.block) blocked_matmul_forward(out, in, wt, blocks.start.data(), E, blocks.block, I, O, nullptr);
    else grouped_matmul_forward(out, in, wt, offs.data(), E, I, O, nullptr);
  };
  // As src/cuda/device_step.cpp: bf16 dW for one block per expert, fp32 for several; the blocked
  // first writers overwrite (acc false), the grouped GEMM accumulates.
  auto expert_bwd = [&](bf* din, bf* dwt, float* dwt32, const bf* dout, const bf* in, const bf* wt, int64_t I,
                        int64_t O, bool acc) {
    const int64_t* st = blocks.start.data();
    if (!blocks.block) grouped_matmul_backward(din, dwt, dout, in, wt, offs.data(), E, I, O, nullptr);
    else if (blocks.max_blocks == 1)
      blocked_matmul_backward(din, dwt, nullptr, dout, in, wt, st, E, blocks.block, I, O, nullptr, acc);
    else blocked_matmul_backward(din, nullptr, dwt32, dout, in, wt, st, E, blocks.block, I, O, nullptr, acc);
  };
  const double moe_ms = time_ms([&] {
    matmul_forward(logits, xn32, wr, N, D, E, false, nullptr);
    router_topk_forward(probs, idx, w, logits, nullptr, N, E, k, true, 1.0f, nullptr);
    router_stats(lse, sums, logits, probs, N, E, nullptr);
    permute_by_expert(slots, rows, offsets, idx, M, k, E, nullptr);
    MOE_CUDA_CHECK(cudaMemcpy(offs.data(), offsets, sizeof(int64_t) * (E + 1), cudaMemcpyDeviceToHost));
    blocks = expert_blocks(offs.data(), E, R, padding);
    Ru = blocks.block ? blocks.rows() : M;
    if (blocks.block) {
      MOE_CUDA_CHECK(cudaMemcpyAsync(starts, blocks.start.data(), sizeof(int64_t) * (E + 1), cudaMemcpyHostToDevice));
      expand_expert_rows(pslots, prows, slots, rows, offsets, starts, E, Ru, nullptr);
    }
    const int32_t* lslots = blocks.block ? pslots : slots;  // the layout's slots and rows
    const int32_t* lrows = blocks.block ? prows : rows;
    invert_permutation(slot_row, lslots, Ru, nullptr);
    gather_rows(ws, w, lslots, Ru, 1, nullptr);
    gather_rows(xe, xn, lrows, Ru, D, nullptr);
    expert_fwd(h1, xe, w1, D, Fe);
    expert_fwd(h3, xe, w3, D, Fe);
    swiglu_forward(act, h1, h3, Ru * Fe, nullptr);
    expert_fwd(ye, act, w2, Fe, D);
    combine_rows(x, x, ye, slot_row, w, N, k, D, nullptr);
    // backward
    scatter_add_rows_backward(dxe, dws, dx, ye, lrows, ws, Ru, D, nullptr);
    expert_bwd(dact, dw2, dw2f, dxe, act, w2, Fe, D, false);
    swiglu_backward(dh1, dh3, dact, h1, h3, Ru * Fe, nullptr, /*accumulate=*/false);
    expert_bwd(dxe, dw1, dw1f, dh1, xe, w1, D, Fe, false);
    expert_bwd(dxe, dw3, dw3f, dh3, xe, w3, D, Fe, true);
    combine_rows(dxn, nullptr, dxe, slot_row, nullptr, N, k, D, nullptr);
    gather_rows(dwslot, dws, slot_row, M, 1, nullptr);
    router_backward(dlog, probs, idx, dwslot, lse, nullptr, 0.0f, N, E, k, true, 1.0f, nullptr);
    matmul_backward(dxn, dwr, dlog, xn32, wr, N, D, E, nullptr);
  });
  // Dense twin: the same GEMM FLOPs (N x D -> Fd twice, Fd -> D), forward and backward.
  bf *dh = random_buffer<bf>(N * Fd, 81), *dd = random_buffer<bf>(N * Fd, 82), *dy = random_buffer<bf>(N * D, 83);
  bf *v1 = random_buffer<bf>(Fd * D, 84, 0.05f), *v2 = random_buffer<bf>(D * Fd, 85, 0.05f);
  bf *g1 = random_buffer<bf>(Fd * D, 86), *g2 = random_buffer<bf>(D * Fd, 87), *dxd = random_buffer<bf>(N * D, 88);
  const double dense_ms = time_ms([&] {
    matmul_forward(dh, xn, v1, N, D, Fd, false, nullptr);
    matmul_forward(dd, xn, v1, N, D, Fd, false, nullptr);
    matmul_forward(dy, dd, v2, N, Fd, D, false, nullptr);
    matmul_backward(dh, g2, dy, dd, v2, N, Fd, D, nullptr);
    matmul_backward(dxd, g1, dh, xn, v1, N, D, Fd, nullptr);
    matmul_backward(dxd, g1, dd, xn, v1, N, D, Fd, nullptr);
  });
  // A dense SwiGLU FFN layer of the same FLOPs (for reference: the issue's ratio is against the
  // GEMMs alone): its GEMMs plus the SwiGLU forward and backward on N x Fd elements, which the MoE
  // layer also pays (on its R x Fe rows).
  bf *h3d = random_buffer<bf>(N * Fd, 92), *actd = random_buffer<bf>(N * Fd, 93), *dh3d = random_buffer<bf>(N * Fd, 94);
  bf* dactd = random_buffer<bf>(N * Fd, 95);
  const double dense_layer_ms = time_ms([&] {
    matmul_forward(dh, xn, v1, N, D, Fd, false, nullptr);
    matmul_forward(h3d, xn, v1, N, D, Fd, false, nullptr);
    swiglu_forward(actd, dh, h3d, N * Fd, nullptr);
    matmul_forward(dy, actd, v2, N, Fd, D, false, nullptr);
    matmul_backward(dactd, g2, dy, actd, v2, N, Fd, D, nullptr, false);
    swiglu_backward(dd, dh3d, dactd, dh, h3d, N * Fd, nullptr, /*accumulate=*/false);
    matmul_backward(dxd, g1, dd, xn, v1, N, D, Fd, nullptr, false);
    matmul_backward(dxd, g1, dh3d, xn, v1, N, D, Fd, nullptr);
  });
  const double flops = 3.0 * 3.0 * 2.0 * N * D * Fd;  // 3 GEMMs, forward + 2 backward
  std::printf("%-8s MoE layer fwd+bwd (bf16, E=%lld top-%lld, %s, computed/routed rows %.3f): %.3f ms = %.1f TFLOP/s; "
              "dense cuBLAS twin %.3f ms = %.1f TFLOP/s; MoE / dense = %.0f%%\n",
              s.name, (long long)E, (long long)k, blocks.block ? (blocks.max_blocks > 1 ? "blocked" : "one block each") : "grouped", double(Ru) / double(M),
              moe_ms, flops / (moe_ms * 1e-3) / 1e12, dense_ms, flops / (dense_ms * 1e-3) / 1e12,
              100 * dense_ms / moe_ms);
  std::printf("%-8s   (reference) dense SwiGLU FFN layer, GEMMs + SwiGLU fwd/bwd: %.3f ms; MoE / dense layer = %.0f%%\n",
              s.name, dense_layer_ms, 100 * dense_layer_ms / moe_ms);
  for (float* p : {xn32, wr, logits, probs, w, ws, lse, x, dx, dxn, dws, dwslot, dlog, dwr, dw1f, dw2f, dw3f})
    MOE_CUDA_CHECK(cudaFree(p));
  for (bf* p : {xn, xe, ye, w1, w3, w2, h1, h3, act, dh1, dh3, dact, dxe, dw1, dw3, dw2, dh, dd, dy, v1, v2, g1, g2, dxd,
                h3d, actd, dh3d, dactd})
    MOE_CUDA_CHECK(cudaFree(p));
  MOE_CUDA_CHECK(cudaFree(sums));
  for (int32_t* p : {idx, slots, rows, pslots, prows, slot_row}) MOE_CUDA_CHECK(cudaFree(p));
  for (int64_t* p : {offsets, starts}) MOE_CUDA_CHECK(cudaFree(p));
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
  // Headline ratios first (issue #11): the gpu_bench.yaml layer shape and the large one.
  const double copy_bw = copy_bandwidth();
  std::printf("device copy bandwidth (read + write): %.0f GB/s; bf16 cuBLAS GEMM 8192^3: %.1f TFLOP/s\n", copy_bw / 1e9,
              bf16_gemm_peak() / 1e12);
  const Shape gpu_bench{"gpu_bench", 8, 2048, 1024, 16, 4, 64, 8, 1408, 2};
  for (const Shape& s : {gpu_bench, shapes[1]}) {
    bench_router_permute(s, copy_bw);
    bench_combine(s);
    bench_moe_layer(s, 0.0);   // compact layout, grouped GEMM
    bench_moe_layer(s, 1.25);  // train.gpu_expert_padding's default: the blocked layout
  }
  bench_gemms<__nv_bfloat16>(gpu_bench, "bf16");
  bench_attention<__nv_bfloat16>(gpu_bench, "bf16");
  for (const Shape& s : shapes) {
    bench_gemms<float>(s, "fp32");
    bench_gemms<__nv_bfloat16>(s, "bf16");
    bench_attention<float>(s, "fp32");
    bench_attention<__nv_bfloat16>(s, "bf16");
    bench_routing(s);
  }
  return 0;
}
