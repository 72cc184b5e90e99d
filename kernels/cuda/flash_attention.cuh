// Tiled causal attention with an online softmax (FlashAttention-2 style) for bf16 on tensor cores
// (WMMA 16x16x16, fp32 accumulation): no T x T matrix in memory. Forward keeps the row
// logsumexp (lse[B, H, T], fp32) for backward, which recomputes the probabilities tile by tile.
// Layouts as in attention.cuh: q/out [B*T, H*hd], k/v [B*T, KV*hd]; head h reads kv head h/(H/KV).
// Supported shapes: T a multiple of 64 and hd 64 or 128 (flash_attention_supported); the
// DeviceModel falls back to attention.cuh otherwise.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

bool flash_attention_supported(int64_t T, int64_t hd);

// Block shape: 64 query rows (forward) or keys (backward) per 4-warp block, or 128 per 8-warp block
// where T % 128 == 0 (each K/V or Q/dO tile loaded serves twice the rows; the backward issues half
// the dq atomics). The default is k64, the shape measured on an H100; the device step times both on
// its model and keeps the faster (src/cuda/device_step.cpp), bench_gpu_ops prints both; k128 falls
// back to k64 where T % 128 != 0.
enum class FlashBlock { k64, k128 };

void flash_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd,
                             cudaStream_t stream, FlashBlock block = FlashBlock::k64);

// Accumulates into dq, dk, dv (bf16), or overwrites them (not read) when accumulate is false.
// `out` and `lse` are the forward's. Scratch (dq in fp32 and the row terms rowsum(dout * out)) is
// stream-ordered.
void flash_attention_backward(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dout,
                              const __nv_bfloat16* out, const float* lse, const __nv_bfloat16* q,
                              const __nv_bfloat16* k, const __nv_bfloat16* v, int64_t B, int64_t T, int64_t H,
                              int64_t KV, int64_t hd, cudaStream_t stream, FlashBlock block = FlashBlock::k64,
                              bool accumulate = true);

}  // namespace moe::cuda
