// Attention of one new query row over a layer's KV cache (incremental decoding), twin of
// src/model/kv_cache.h cached_attention: q (H*hd), cached k/v rows of KV*hd for positions
// 0..len-1, out (H*hd); head h reads kv head h / (H/KV). scores: scratch of H * len floats.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

void decode_attention(float* out, float* scores, const float* q, const float* k, const float* v, int64_t len,
                      int64_t H, int64_t KV, int64_t hd, cudaStream_t stream);

}  // namespace moe::cuda
