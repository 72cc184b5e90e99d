// One block per head: scores by a thread per cached position, a block max and sum, then the
// weighted sum of values by a thread per output element.
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void decode_attention_kernel(float* out, float* scores, const float* q, const float* k, const float* v,
                                        int64_t len, int64_t H, int64_t KV, int64_t hd, float scale) {
  __shared__ float scratch[32];
  const int64_t h = blockIdx.x, kvC = KV * hd, off = (h / (H / KV)) * hd;
  const float* qh = q + h * hd;
  float* s = scores + h * len;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    float dot = 0.0f;
    for (int64_t d = 0; d < hd; ++d) dot += qh[d] * k[j * kvC + off + d];
    s[j] = dot * scale;
    mx = fmaxf(mx, s[j]);
  }
  mx = block_reduce(mx, scratch, MaxOp{}, -INFINITY);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) sum += s[j] = expf(s[j] - mx);
  sum = block_reduce(sum, scratch, SumOp{}, 0.0f);
  __syncthreads();  // every score is written before any thread reads them all
  const float inv = 1.0f / sum;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float y = 0.0f;
    for (int64_t j = 0; j < len; ++j) y += s[j] * inv * v[j * kvC + off + d];
    out[h * hd + d] = y;
  }
}

}  // namespace

void decode_attention(float* out, float* scores, const float* q, const float* k, const float* v, int64_t len,
                      int64_t H, int64_t KV, int64_t hd, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(KV > 0 && H % KV == 0 && len > 0, "decode_attention: bad head counts or empty cache (len " +
                                                         std::to_string(len) + ")");
  decode_attention_kernel<<<unsigned(H), kThreads, 0, stream>>>(out, scores, q, k, v, len, H, KV, hd,
                                                                1.0f / sqrtf(float(hd)));
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
