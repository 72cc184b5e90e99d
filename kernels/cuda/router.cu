// The fused router kernel: softmax, biased top-k selection and weight renormalisation in one pass
// per token: one thread each with the scores in registers for up to 32 experts (a warp would idle
// most lanes there), else one warp each, probabilities written once and re-read by the same lane.
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/topk.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxK = 32;

__global__ void router_kernel(float* probs, int32_t* idx, float* weights, const float* logits, const float* bias,
                              int64_t N, int64_t E, int64_t k, bool norm, float scale) {
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < N; r += warps) {
    const float* l = logits + r * E;
    float* p = probs + r * E;
    float mx = -INFINITY;
    for (int64_t e = lane; e < E; e += 32) mx = fmaxf(mx, l[e]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int64_t e = lane; e < E; e += 32) sum += expf(l[e] - mx);
    const float inv = 1.0f / warp_sum(sum);
    for (int64_t e = lane; e < E; e += 32) p[e] = expf(l[e] - mx) * inv;
    __syncwarp();
    float w[kMaxK];
    Pick prev{0.0f, -1, 0.0f};
    float total = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      // Each lane scans its own experts e = lane + 32 m: the biased score is formed on the fly.
      Pick best{-INFINITY, INT32_MAX, 0.0f};
      for (int64_t e = lane; e < E; e += 32) {
        const float v = p[e] + (bias ? bias[e] : 0.0f);
        const int32_t i = static_cast<int32_t>(e);
        if (prev.idx >= 0 && !before(prev.val, prev.idx, v, i)) continue;
        if (before(v, i, best.val, best.idx)) best = {v, i, p[e]};
      }
      prev = warp_best(best);
      w[j] = prev.aux;
      total += prev.aux;
      if (lane == 0) idx[r * k + j] = prev.idx;
    }
    if (lane == 0)
      for (int64_t j = 0; j < k; ++j) weights[r * k + j] = (norm ? w[j] / total : w[j]) * scale;
  }
}

constexpr int kSmallE = 32;

__global__ void router_small_kernel(float* probs, int32_t* idx, float* weights, const float* logits,
                                    const float* bias, int64_t N, int64_t E, int64_t k, bool norm, float scale) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < N; r += int64_t(gridDim.x) * blockDim.x) {
    const float* l = logits + r * E;
    float p[kSmallE];
    float mx = -INFINITY;
#pragma unroll
    for (int e = 0; e < kSmallE; ++e)
      if (e < E) p[e] = l[e], mx = fmaxf(mx, p[e]);
    float sum = 0.0f;
#pragma unroll
    for (int e = 0; e < kSmallE; ++e)
      if (e < E) p[e] = expf(p[e] - mx), sum += p[e];
    const float inv = 1.0f / sum;
#pragma unroll
    for (int e = 0; e < kSmallE; ++e)
      if (e < E) p[e] *= inv, probs[r * E + e] = p[e];
    Pick prev{0.0f, -1, 0.0f};
    float total = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      Pick best{-INFINITY, INT32_MAX, 0.0f};
#pragma unroll
      for (int e = 0; e < kSmallE; ++e) {
        if (e >= E) continue;
        const float v = p[e] + (bias ? bias[e] : 0.0f);
        if (prev.idx >= 0 && !before(prev.val, prev.idx, v, e)) continue;
        if (before(v, e, best.val, best.idx)) best = {v, e, p[e]};
      }
      prev = best;
      idx[r * k + j] = best.idx;
      weights[r * k + j] = best.aux;  // renormalised below, once the total is known
      total += best.aux;
    }
    for (int64_t j = 0; j < k; ++j) weights[r * k + j] = (norm ? weights[r * k + j] / total : weights[r * k + j]) * scale;
  }
}

}  // namespace

void router_topk_forward(float* probs, int32_t* idx, float* weights, const float* logits, const float* bias,
                         int64_t N, int64_t E, int64_t k, bool norm_topk_prob, float scale, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(k >= 1 && k <= E && k <= kMaxK,
                   "router: top_k = " + std::to_string(k) + " must lie in [1, min(E, " + std::to_string(kMaxK) + ")]");
  if (N == 0) return;
  if (E <= kSmallE)
    router_small_kernel<<<grid_for(N, kThreads), kThreads, 0, stream>>>(probs, idx, weights, logits, bias, N, E, k,
                                                                        norm_topk_prob, scale);
  else
    router_kernel<<<grid_for(N, kThreads / 32), kThreads, 0, stream>>>(probs, idx, weights, logits, bias, N, E, k,
                                                                       norm_topk_prob, scale);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
