// One warp per token for lse and backward; one block per expert column for the sums.
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/router_grad.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxK = 32;

__global__ void lse_kernel(float* lse, const float* logits, int64_t N, int64_t E) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < N; r += warps) {
    const float* l = logits + r * E;
    float mx = -INFINITY;
    for (int64_t e = lane; e < E; e += 32) mx = fmaxf(mx, l[e]);
    mx = warp_max(mx);
    double sum = 0;
    for (int64_t e = lane; e < E; e += 32) sum += exp(double(l[e]) - double(mx));
    sum = warp_sum(sum);
    if (lane == 0) lse[r] = float(double(mx) + log(sum));
  }
}

// Block e < E sums probs[:, e]; block E sums lse^2; block E + 1 sums the entropies of the rows.
__global__ void column_sums_kernel(double* sums, const float* probs, const float* lse, int64_t N, int64_t E) {
  __shared__ double scratch[32];
  const int64_t e = blockIdx.x;
  double s = 0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    if (e < E) {
      s += probs[n * E + e];
    } else if (e == E) {
      s += double(lse[n]) * lse[n];
    } else {
      for (int64_t j = 0; j < E; ++j) {
        const float q = probs[n * E + j];
        if (q > 0) s -= double(q) * log(double(q));
      }
    }
  }
  s = block_reduce(s, scratch, SumOp{}, 0.0);
  if (threadIdx.x == 0) sums[e] = s;
}

__global__ void router_bwd_kernel(float* dlogits, const float* probs, const int32_t* idx, const float* dweights,
                                  const float* lse, const float* aux_coef, float zc, int64_t N, int64_t E, int64_t k,
                                  bool norm, float scale) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < N; r += warps) {
    const float* p = probs + r * E;
    // d weights_j / d p_sel: with s = sum p_sel, w_j = scale p_j / s, so
    // dp_j = scale (dw_j / s - sum_i dw_i p_i / s^2); without renormalisation dp_j = scale dw_j.
    float psel[kMaxK], dsel[kMaxK];
    float s = 0.0f, dot = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      psel[j] = p[idx[r * k + j]];
      s += psel[j];
      dot += dweights[r * k + j] * psel[j];
    }
    for (int64_t j = 0; j < k; ++j) {
      const float dw = dweights[r * k + j];
      dsel[j] = norm ? scale * (dw / s - dot / (s * s)) : scale * dw;
    }
    // dprobs[e] = aux_coef[e] + dsel (selected experts); softmax backward: p (dprobs - sum dprobs p).
    float g = 0.0f;
    for (int64_t e = lane; e < E; e += 32) {
      float dp = aux_coef ? aux_coef[e] : 0.0f;
      for (int64_t j = 0; j < k; ++j)
        if (idx[r * k + j] == e) dp += dsel[j];
      g += dp * p[e];
    }
    g = warp_sum(g);
    const float z = zc * lse[r];
    for (int64_t e = lane; e < E; e += 32) {
      float dp = aux_coef ? aux_coef[e] : 0.0f;
      for (int64_t j = 0; j < k; ++j)
        if (idx[r * k + j] == e) dp += dsel[j];
      dlogits[r * E + e] += p[e] * (dp - g) + z * p[e];
    }
  }
}

}  // namespace

void router_stats(float* lse, double* sums, const float* logits, const float* probs, int64_t N, int64_t E,
                  cudaStream_t stream) {
  if (N > 0) {
    lse_kernel<<<grid_for(N, kThreads / 32), kThreads, 0, stream>>>(lse, logits, N, E);
    MOE_CUDA_CHECK_LAUNCH();
  }
  column_sums_kernel<<<unsigned(E + 2), 512, 0, stream>>>(sums, probs, lse, N, E);
  MOE_CUDA_CHECK_LAUNCH();
}

void router_backward(float* dlogits, const float* probs, const int32_t* idx, const float* dweights, const float* lse,
                     const float* aux_coef, float zc, int64_t N, int64_t E, int64_t k, bool norm, float scale,
                     cudaStream_t stream) {
  MOE_CUDA_REQUIRE(k >= 1 && k <= E && k <= kMaxK, "router_backward: top_k = " + std::to_string(k) + " out of range");
  if (N == 0) return;
  router_bwd_kernel<<<grid_for(N, kThreads / 32), kThreads, 0, stream>>>(dlogits, probs, idx, dweights, lse, aux_coef,
                                                                         zc, N, E, k, norm, scale);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
