// RMSNorm: one block per row for the row-wise parts (sums in double, like the CPU twin); the weight
// gradient is a column reduction over rows done in fixed chunks of rows, then summed chunk by chunk
// in order, so it is deterministic without atomics.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rmsnorm.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kChunkRows = 512;  // rows per partial sum of the weight gradient
constexpr int kColTile = 32, kRowLanes = 8;

// out (TO) = the fp32 result rounded; out32 (optional) = the fp32 result itself.
template <typename TI, typename TO>
__global__ void rmsnorm_fwd_kernel(TO* out, float* out32, float* rstd, const TI* inp, const TI* weight, int64_t D,
                                   float eps) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const TI* x = inp + row * D;
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const double v = to_float(x[j]);
    ss += v * v;
  }
  ss = block_reduce(ss, scratch, SumOp{}, 0.0);
  const float r = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(D) + eps));
  if (rstd && threadIdx.x == 0) rstd[row] = r;
  TO* y = out + row * D;
  float* y32 = out32 ? out32 + row * D : nullptr;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const float v = to_float(x[j]) * r * to_float(weight[j]);
    y[j] = from_float<TO>(v);
    if (y32) y32[j] = v;
  }
}

// dx_j (+)= r w_j dy_j - x_j r^3 / D * sum_k dy_k w_k x_k (dinp TD, dout TG, inp and weight TX)
template <typename TD, typename TG, typename TX>
__global__ void rmsnorm_dinp_kernel(TD* dinp, const TG* dout, const TX* inp, const TX* weight, const float* rstd,
                                    int64_t D, bool accumulate) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const TX* x = inp + row * D;
  const TG* dy = dout + row * D;
  const float r = rstd[row];
  double dot = 0.0;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
    dot += static_cast<double>(to_float(dy[j])) * to_float(weight[j]) * to_float(x[j]);
  dot = block_reduce(dot, scratch, SumOp{}, 0.0);
  const float c = static_cast<float>(dot * r * r * r / static_cast<double>(D));
  TD* dx = dinp + row * D;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const float base = accumulate ? to_float(dx[j]) : 0.0f;  // (overwrite: never read)
    dx[j] = from_float<TD>(base + r * to_float(weight[j]) * to_float(dy[j]) - to_float(x[j]) * c);
  }
}

// partial[chunk, j] = sum over the chunk's rows of dy_ij x_ij r_i; block (kColTile, kRowLanes).
template <typename TG, typename TX>
__global__ void rmsnorm_dweight_partial_kernel(float* partial, const TG* dout, const TX* inp, const float* rstd,
                                               int64_t N, int64_t D) {
  __shared__ float acc[kRowLanes][kColTile + 1];
  const int64_t j = blockIdx.x * int64_t(kColTile) + threadIdx.x;
  const int64_t r0 = blockIdx.y * int64_t(kChunkRows), r1 = r0 + kChunkRows < N ? r0 + kChunkRows : N;
  float s = 0.0f;
  if (j < D)
    for (int64_t i = r0 + threadIdx.y; i < r1; i += kRowLanes) s += to_float(dout[i * D + j]) * to_float(inp[i * D + j]) * rstd[i];
  acc[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < D) {
    float t = 0.0f;
    for (int y = 0; y < kRowLanes; ++y) t += acc[y][threadIdx.x];
    partial[blockIdx.y * D + j] = t;
  }
}

template <typename T>
__global__ void rmsnorm_dweight_sum_kernel(T* dweight, const float* partial, int64_t chunks, int64_t D) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= D) return;
  float s = 0.0f;
  for (int64_t c = 0; c < chunks; ++c) s += partial[c * D + j];
  dweight[j] = from_float<T>(to_float(dweight[j]) + s);
}

template <typename TI, typename TO>
void forward(TO* out, float* out32, float* rstd, const TI* inp, const TI* weight, int64_t N, int64_t D, float eps,
             cudaStream_t stream) {
  if (N == 0) return;
  MOE_CUDA_REQUIRE(N <= INT32_MAX, "rmsnorm: too many rows");
  rmsnorm_fwd_kernel<TI, TO><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(out, out32, rstd, inp, weight, D, eps);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename TD, typename TG, typename TX>
void backward(TD* dinp, TD* dweight, const TG* dout, const TX* inp, const TX* weight, const float* rstd, int64_t N,
              int64_t D, bool accumulate, cudaStream_t stream) {
  if (N == 0 || D == 0) return;
  MOE_CUDA_REQUIRE(N <= INT32_MAX, "rmsnorm: too many rows");
  if (dinp) {
    rmsnorm_dinp_kernel<TD, TG, TX>
        <<<static_cast<unsigned>(N), kThreads, 0, stream>>>(dinp, dout, inp, weight, rstd, D, accumulate);
    MOE_CUDA_CHECK_LAUNCH();
  }
  if (dweight) {
    const int64_t chunks = (N + kChunkRows - 1) / kChunkRows;
    MOE_CUDA_REQUIRE(chunks <= 65535, "rmsnorm: too many rows for the weight-gradient grid");
    void* partial = nullptr;
    MOE_CUDA_CHECK(cudaMallocAsync(&partial, sizeof(float) * chunks * D, stream));
    const dim3 grid(static_cast<unsigned>((D + kColTile - 1) / kColTile), static_cast<unsigned>(chunks));
    rmsnorm_dweight_partial_kernel<TG, TX><<<grid, dim3(kColTile, kRowLanes), 0, stream>>>(
        static_cast<float*>(partial), dout, inp, rstd, N, D);
    MOE_CUDA_CHECK_LAUNCH();
    rmsnorm_dweight_sum_kernel<TD><<<grid_for(D, kThreads), kThreads, 0, stream>>>(
        dweight, static_cast<const float*>(partial), chunks, D);
    MOE_CUDA_CHECK_LAUNCH();
    MOE_CUDA_CHECK(cudaFreeAsync(partial, stream));
  }
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t D, float eps,
                     cudaStream_t stream) {
  forward(out, nullptr, rstd, inp, weight, N, D, eps, stream);
}
void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int64_t N, int64_t D, float eps,
                     cudaStream_t stream) {
  forward(out, nullptr, rstd, inp, weight, N, D, eps, stream);
}
void rmsnorm_forward(bf16* out, float* out32, float* rstd, const float* inp, const float* weight, int64_t N, int64_t D,
                     float eps, cudaStream_t stream) {
  forward(out, out32, rstd, inp, weight, N, D, eps, stream);
}
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t D, cudaStream_t stream, bool accumulate) {
  backward(dinp, dweight, dout, inp, weight, rstd, N, D, accumulate, stream);
}
void rmsnorm_backward(bf16* dinp, bf16* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                      const float* rstd, int64_t N, int64_t D, cudaStream_t stream) {
  backward(dinp, dweight, dout, inp, weight, rstd, N, D, true, stream);
}
void rmsnorm_backward(float* dinp, float* dweight, const bf16* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t D, cudaStream_t stream, bool accumulate) {
  backward(dinp, dweight, dout, inp, weight, rstd, N, D, accumulate, stream);
}

}  // namespace moe::cuda
