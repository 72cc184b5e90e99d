// Token permutation by expert (dropless). Slot a = token * k + j is the j-th choice of a token;
// the permutation is stable (an expert's slots stay in slot order), which is what
// moe/dispatcher.cpp's counting sort produces on the CPU.
//
// Two paths with the same outputs:
// - E <= kCountingSortMaxExperts: a stable counting sort in two launches (permute_counting.cu).
//   The slots are cut into `blocks` contiguous chunks of whole tiles (kCountingSortTile slots).
//   Kernel A: each block counts its chunk per expert into row b of a [blocks x E] table.
//   Kernel B: each block reduces that small table itself (it sits in L2): the total per expert
//   (an exclusive block scan of the totals gives the expert offsets) and the counts of the earlier
//   blocks; its base per expert is offset + earlier counts. It then walks its chunk tile by tile:
//   each warp ranks its 4 x 32 slots by expert with __match_any_sync (rank = slots of the same
//   expert earlier in the warp's run), a per-expert prefix over the 8 warps turns the warp counts
//   into positions, and the slots are written there; the base advances by the tile's counts.
//   Block 0 writes the offsets. The table lives in a 128 KiB buffer cached per (host thread,
//   device, stream id), allocated on first use and reused in stream order (no per-call
//   allocation; not capturable in a CUDA graph on a stream's first call).
// - larger E: CUB (histogram, exclusive scan, stable radix sort of the expert ids) with
//   stream-ordered scratch (cudaMallocAsync).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda {

// expert_ids[M] (M = N * k, values in [0, E)) -> sorted_slots[M] (slot ids in expert order),
// rows[M] = sorted_slots / k (the token row to gather), offsets[E + 1] (device, int64; expert e
// owns rows [offsets[e], offsets[e+1]) of the permuted buffer). Ids outside [0, E) are a caller
// bug: the counting path skips them (their output entries stay unwritten) rather than writing
// out of bounds. Defined below, after the two paths it chooses between.
inline void permute_by_expert(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids,
                              int64_t M, int64_t k, int64_t E, cudaStream_t stream);

// The inverse (slot -> position in expert order): invert_permutation in combine.cuh.

// ---- the counting-sort path (exposed for its tests) ----------------------------------------
constexpr int64_t kCountingSortMaxExperts = 1024;  // the block scan holds 4 experts per thread
constexpr int64_t kCountingSortTile = 1024;        // slots per tile: 8 warps x 4 x 32

struct CountingSortPlan {
  int64_t blocks = 0;  // grid of both kernels (0 when M = 0)
  int64_t chunk = 0;   // slots per block, a multiple of kCountingSortTile
};
// Every block of kernel B reads the whole [blocks x E] table, so blocks^2 * E is kept <= 2^20
// (blocks <= 1024); blocks * E <= 2^15 entries for E <= kCountingSortMaxExperts.
CountingSortPlan counting_sort_plan(int64_t M, int64_t E);

// The counting-sort path itself (E <= kCountingSortMaxExperts); permute_by_expert calls it.
void permute_by_expert_counting(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids,
                                int64_t M, int64_t k, int64_t E, cudaStream_t stream);
// The CUB radix-sort path (any E); permute_by_expert calls it for E > kCountingSortMaxExperts.
void permute_by_expert_radix(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids,
                             int64_t M, int64_t k, int64_t E, cudaStream_t stream);

inline void permute_by_expert(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids,
                              int64_t M, int64_t k, int64_t E, cudaStream_t stream) {
  if (E <= kCountingSortMaxExperts) permute_by_expert_counting(sorted_slots, rows, offsets, expert_ids, M, k, E, stream);
  else permute_by_expert_radix(sorted_slots, rows, offsets, expert_ids, M, k, E, stream);
}

}  // namespace moe::cuda
