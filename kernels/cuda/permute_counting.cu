// The counting-sort permutation for E <= kCountingSortMaxExperts (see permute.cuh): kernel A
// counts each block's chunk per expert, kernel B derives its bases from that table and writes the
// slots stably. Both kernels cut the slots into the same chunks (counting_sort_plan).
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/permute.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kItems = 4;                                 // slots per lane per tile
constexpr int kScanItems = 4;                             // experts per thread in the block scan
constexpr int64_t kMaxBlocks = 1024;
constexpr int64_t kTableEntries = int64_t(1) << 15;       // >= blocks * E for every plan
constexpr unsigned kFull = 0xffffffffu;
static_assert(kWarps * kItems * 32 == kCountingSortTile, "a tile is 8 warps x 4 x 32 slots");
static_assert(kThreads * kScanItems == kCountingSortMaxExperts, "the block scan covers every expert");

// Kernel A: table[b * E + e] = number of slots of block b's chunk routed to expert e.
// Warp-aggregated shared atomics: the lowest lane of each group of equal ids adds the group size.
__global__ void chunk_histogram_kernel(int* table, const int32_t* ids, int64_t M, int64_t chunk, int E) {
  extern __shared__ int hist[];
  for (int e = threadIdx.x; e < E; e += kThreads) hist[e] = 0;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t begin = blockIdx.x * chunk, end = min(M, begin + chunk);
  for (int64_t base = begin; base < end; base += kThreads) {  // uniform trip count: whole warps
    const int64_t i = base + threadIdx.x;
    int e = i < end ? ids[i] : -1;
    if (e >= E) e = -1;  // out-of-range ids are skipped, never written out of bounds
    const unsigned peers = __match_any_sync(kFull, e);
    if (e >= 0 && lane == __ffs(peers) - 1) atomicAdd(&hist[e], __popc(peers));
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += kThreads) table[int64_t(blockIdx.x) * E + e] = hist[e];
}

// Kernel B. Shared memory: warp_cnt[kWarps][E] then base[E]. Before the tile loop the first 2E
// ints of warp_cnt hold the per-expert totals and the counts of the earlier blocks.
__global__ void chunk_scatter_kernel(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int* table,
                                     const int32_t* ids, int64_t M, int64_t chunk, int32_t k, int E, int blocks) {
  using BlockScan = cub::BlockScan<int, kThreads>;
  __shared__ typename BlockScan::TempStorage scan_storage;
  extern __shared__ int smem[];
  int* warp_cnt = smem;
  int* base = smem + kWarps * E;
  int* total = warp_cnt;
  int* before = warp_cnt + E;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  // 1. This block's base per expert: exclusive scan of the totals + counts of earlier blocks.
  for (int e = tid; e < E; e += kThreads) total[e] = before[e] = 0;
  __syncthreads();
  const int64_t entries = int64_t(blocks) * E;
  for (int64_t x = tid; x < entries; x += kThreads) {  // coalesced over the table
    const int c = table[x];
    if (c == 0) continue;
    const int64_t b = x / E;
    const int e = static_cast<int>(x - b * E);
    atomicAdd(&total[e], c);
    if (b < blockIdx.x) atomicAdd(&before[e], c);
  }
  __syncthreads();
  int items[kScanItems], excl[kScanItems], all = 0;
  for (int j = 0; j < kScanItems; ++j) {
    const int e = tid * kScanItems + j;
    items[j] = e < E ? total[e] : 0;
  }
  BlockScan(scan_storage).ExclusiveSum(items, excl, all);
  for (int j = 0; j < kScanItems; ++j) {
    const int e = tid * kScanItems + j;
    if (e >= E) continue;
    base[e] = excl[j] + before[e];
    if (blockIdx.x == 0) offsets[e] = excl[j];
  }
  if (blockIdx.x == 0 && tid == 0) offsets[E] = all;
  __syncthreads();  // base complete; total/before (warp_cnt) are free again

  // 2. Tiles in slot order. Warp w owns the run [tile + w * 128, tile + (w + 1) * 128).
  const unsigned lanes_below = (1u << lane) - 1u;
  const int64_t begin = blockIdx.x * chunk, end = min(M, begin + chunk);
  int* mine = warp_cnt + warp * E;
  for (int64_t tile = begin; tile < end; tile += kCountingSortTile) {
    for (int x = tid; x < kWarps * E; x += kThreads) warp_cnt[x] = 0;
    __syncthreads();
    const int64_t run = tile + int64_t(warp) * kItems * 32;
    int expert[kItems], rank[kItems];
    for (int r = 0; r < kItems; ++r) {
      const int64_t i = run + r * 32 + lane;
      int e = i < end ? ids[i] : -1;
      if (e >= E) e = -1;
      const unsigned peers = __match_any_sync(kFull, e);
      const int seen = e >= 0 ? mine[e] : 0;  // this warp's earlier slots of expert e in the tile
      __syncwarp();
      if (e >= 0 && lane == __ffs(peers) - 1) mine[e] = seen + __popc(peers);
      __syncwarp();
      expert[r] = e;
      rank[r] = seen + __popc(peers & lanes_below);
    }
    __syncthreads();
    // Warp counts -> each warp's first position per expert; the base moves past the tile.
    for (int e = tid; e < E; e += kThreads) {
      int pos = base[e];
      for (int w = 0; w < kWarps; ++w) {
        const int c = warp_cnt[w * E + e];
        warp_cnt[w * E + e] = pos;
        pos += c;
      }
      base[e] = pos;
    }
    __syncthreads();
    for (int r = 0; r < kItems; ++r) {
      if (expert[r] < 0) continue;
      const int pos = mine[expert[r]] + rank[r];
      const int32_t slot = static_cast<int32_t>(run + r * 32 + lane);
      sorted_slots[pos] = slot;
      rows[pos] = slot / k;
    }
    __syncthreads();  // positions read before the next tile clears warp_cnt
  }
}

// The [blocks x E] table, one buffer per (host thread, device, stream): calls on one stream run
// in order, so the next call's kernel A cannot overwrite a table that kernel B still reads. Streams
// are keyed by their id, unique for the life of the program, not by the handle: a destroyed
// stream's handle may come back for a new stream while the old one's work is still pending. The
// cost is 128 KiB per stream that ever permuted, kept until the thread exits.
struct TableCache {
  std::map<std::pair<int, unsigned long long>, int*> buffers;
  ~TableCache() {
    for (auto& [key, ptr] : buffers) {
      // Best effort at thread exit: the runtime may already be shutting down.
      if (cudaSetDevice(key.first) == cudaSuccess) cudaFree(ptr);
    }
  }
};

thread_local TableCache t_tables;

int* table_for(cudaStream_t stream) {
  int dev = 0;
  unsigned long long id = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&dev));
  MOE_CUDA_CHECK(cudaStreamGetId(stream, &id));
  int*& ptr = t_tables.buffers[{dev, id}];
  if (!ptr) MOE_CUDA_CHECK(cudaMalloc(&ptr, sizeof(int) * kTableEntries));
  return ptr;
}

}  // namespace

CountingSortPlan counting_sort_plan(int64_t M, int64_t E) {
  MOE_CUDA_REQUIRE(E >= 1 && E <= kCountingSortMaxExperts, "counting sort: E = " + std::to_string(E));
  CountingSortPlan p;
  if (M <= 0) return p;
  int64_t cap = static_cast<int64_t>(std::sqrt(double(int64_t(1) << 20) / double(E)));
  cap = std::clamp<int64_t>(cap, 1, kMaxBlocks);
  const int64_t tiles = (M + kCountingSortTile - 1) / kCountingSortTile;
  const int64_t blocks = std::min(tiles, cap);
  p.chunk = (tiles + blocks - 1) / blocks * kCountingSortTile;
  p.blocks = (M + p.chunk - 1) / p.chunk;
  return p;
}

void permute_by_expert_counting(int32_t* sorted_slots, int32_t* rows, int64_t* offsets, const int32_t* expert_ids,
                                int64_t M, int64_t k, int64_t E, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(E >= 1 && E <= kCountingSortMaxExperts && k >= 1 && k <= INT32_MAX,
                   "permute: E = " + std::to_string(E) + ", k = " + std::to_string(k));
  MOE_CUDA_REQUIRE(M >= 0 && M <= INT32_MAX, "permute: more than 2^31 slots");
  const CountingSortPlan p = counting_sort_plan(M, E);
  if (p.blocks == 0) {
    MOE_CUDA_CHECK(cudaMemsetAsync(offsets, 0, sizeof(int64_t) * (E + 1), stream));
    return;
  }
  MOE_CUDA_REQUIRE(p.blocks * E <= kTableEntries, "permute: table of " + std::to_string(p.blocks) + " x " +
                                                      std::to_string(E) + " entries");
  int* table = table_for(stream);
  const int e = static_cast<int>(E), blocks = static_cast<int>(p.blocks);
  chunk_histogram_kernel<<<blocks, kThreads, sizeof(int) * E, stream>>>(table, expert_ids, M, p.chunk, e);
  MOE_CUDA_CHECK_LAUNCH();
  const size_t smem = sizeof(int) * (kWarps + 1) * E;  // <= 36 KiB: no opt-in needed
  chunk_scatter_kernel<<<blocks, kThreads, smem, stream>>>(sorted_slots, rows, offsets, table, expert_ids, M, p.chunk,
                                                           static_cast<int32_t>(k), e, blocks);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
