// Host emulation of the CUDA features that kernels/cuda/permute_counting.cu, gather_scatter.cu,
// combine.cu, expert_layout.cu and flash_attention.cu use, so their GPU tests run on a machine
// without a GPU (see ../run.sh). One std::thread per CUDA thread of a block, reused for every
// block; the blocks of a launch run one after another (x fastest, then y), so a function-local
// `static` is that block's __shared__ memory. __syncthreads, __syncwarp and the warp collectives
// are barriers: a lane that misses one hangs the run instead of passing. Dynamic
// shared memory starts as garbage; a launch asking for more than 48 KiB of it needs the
// cudaFuncSetAttribute opt-in (at most sm_90's 227 KiB), as on the device. __CUDA_ARCH__ is 900,
// so the kernels' sm_90 branches are the ones emulated. The tensor-core PTX of flash attention is
// emulated in kernels/cuda/mma_ptx.cuh (this folder). What this cannot show: races the barriers
// hide, the memory model, alignment faults other than the ones checked (vector atomics, ldmatrix
// and cp.async addresses), the hardware's fp32 summation order inside mma and __expf's
// approximation error, and speed.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct EmuDim {  // gridDim, blockDim
  unsigned x = 0, y = 1, z = 1;
};
struct EmuIdx {  // threadIdx, blockIdx
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace emu {
inline thread_local EmuIdx thread_idx, block_idx;
inline EmuDim grid_dim, block_dim;
inline std::vector<char> dynamic_smem;
inline std::unique_ptr<std::barrier<>> block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline int64_t exchange_int[32][32];
inline double exchange_real[32][32];

template <typename T>
T* dyn_smem() {
  return reinterpret_cast<T*>(dynamic_smem.data());
}

// Dynamic shared memory a kernel may use (cudaFuncAttributeMaxDynamicSharedMemorySize).
inline std::map<const void*, size_t> max_dynamic_smem;
constexpr size_t kDefaultSmem = 48 * 1024, kMaxSmemSm90 = 227 * 1024;

// True when [p, p + n) lies in the current block's dynamic shared memory.
inline bool in_dynamic_smem(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  return c >= dynamic_smem.data() && c + n <= dynamic_smem.data() + dynamic_smem.size();
}

struct LaunchConfig {
  dim3 grid, block;
  size_t smem;
};
inline LaunchConfig config(dim3 grid, dim3 block, size_t smem = 0, void* /*stream*/ = nullptr) {
  return {grid, block, smem};
}
// The thread's index in its block, x fastest (warps are 32 consecutive ones, as on the device).
inline unsigned linear_tid() { return thread_idx.x + thread_idx.y * block_dim.x; }

template <typename Kernel, typename... Args>
void launch(LaunchConfig c, Kernel kernel, Args... args) {
  const unsigned threads_per_block = c.block.x * c.block.y;
  if (threads_per_block == 0 || threads_per_block % 32 != 0 || threads_per_block > 1024 || c.block.z != 1)
    throw std::runtime_error("emu: bad block size");
  if (c.grid.z != 1) throw std::runtime_error("emu: grid.z > 1 is not emulated");
  size_t smem_limit = kDefaultSmem;
  if constexpr (std::is_pointer_v<Kernel>) {
    const auto opt_in = max_dynamic_smem.find(reinterpret_cast<const void*>(kernel));
    if (opt_in != max_dynamic_smem.end()) smem_limit = opt_in->second;
  }
  if (c.smem > smem_limit) throw std::runtime_error("emu: dynamic shared memory beyond the kernel's limit");
  grid_dim.x = c.grid.x;
  grid_dim.y = c.grid.y;
  block_dim.x = c.block.x;
  block_dim.y = c.block.y;
  // One thread per CUDA thread of a block, kept for all the blocks of the launch (creating threads
  // per block dominated the run time); the blocks still run one after another, and `between`
  // keeps every thread out of block b + 1 until all have left block b and shared memory is reset.
  block_barrier = std::make_unique<std::barrier<>>(threads_per_block);
  warp_barriers.clear();
  for (unsigned w = 0; w < threads_per_block / 32; ++w) warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
  std::barrier<> between(threads_per_block);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < threads_per_block; ++t)
    threads.emplace_back([&, t] {
      thread_idx.x = t % c.block.x;
      thread_idx.y = t / c.block.x;
      for (unsigned by = 0; by < c.grid.y; ++by)
        for (unsigned bx = 0; bx < c.grid.x; ++bx) {
          if (t == 0) dynamic_smem.assign(c.smem + 16, char(0x5a));
          between.arrive_and_wait();
          block_idx.x = bx;
          block_idx.y = by;
          kernel(args...);
          between.arrive_and_wait();
        }
    });
  for (auto& t : threads) t.join();
}
}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define gridDim emu::grid_dim
#define blockDim emu::block_dim

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_barriers[emu::linear_tid() / 32]->arrive_and_wait(); }
inline unsigned __match_any_sync(unsigned, int v) {
  const unsigned w = emu::linear_tid() / 32, lane = emu::linear_tid() % 32;
  emu::exchange_int[w][lane] = v;
  __syncwarp();
  unsigned peers = 0;
  for (unsigned q = 0; q < 32; ++q)
    if (emu::exchange_int[w][q] == v) peers |= 1u << q;
  __syncwarp();
  return peers;
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  const unsigned w = emu::linear_tid() / 32, lane = emu::linear_tid() % 32;
  emu::exchange_real[w][lane] = double(v);
  __syncwarp();
  const T r = T(emu::exchange_real[w][lane ^ unsigned(lane_mask)]);
  __syncwarp();
  return r;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(int(x)); }
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
// Single precision as the device computes it: __expf is ex2.approx(x log2 e) there (its
// approximation error, about 2 ulp, is not reproduced).
inline float __expf(float x) { return std::exp2f(x * 1.44269504f); }
inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
inline float __uint_as_float(unsigned u) {
  float f = 0.0f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct uint2 {
  unsigned x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline float4 atomicAdd(float4* p, float4 v) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) std::abort();  // the hardware faults on this too
  float* f = reinterpret_cast<float*>(p);
  atomicAdd(f, v.x);
  atomicAdd(f + 1, v.y);
  atomicAdd(f + 2, v.z);
  atomicAdd(f + 3, v.w);
  return v;
}
inline float2 atomicAdd(float2* p, float2 v) {
  if (reinterpret_cast<uintptr_t>(p) % 8 != 0) std::abort();
  float* f = reinterpret_cast<float*>(p);
  atomicAdd(f, v.x);
  atomicAdd(f + 1, v.y);
  return v;
}
