// Host emulation of the CUDA features the kernels of kernels/cuda use, so their GPU tests run on a
// machine without a GPU (see ../run.sh). The threads of a block are fibers on one OS thread that
// switch at barriers; the blocks of a launch run one after another (x fastest, then y), so a
// function-local `static` is that block's __shared__ memory. __syncthreads, __syncwarp and the
// warp collectives are barriers: a lane that misses one aborts the run with a deadlock report
// instead of passing. Dynamic shared memory starts as garbage; a launch asking for more than
// 48 KiB of it needs the cudaFuncSetAttribute opt-in (at most sm_90's 227 KiB), as on the device.
// __CUDA_ARCH__ is 900, so the kernels' sm_90 branches are the ones emulated. The tensor-core PTX
// of flash attention is emulated in kernels/cuda/mma_ptx.cuh (this folder). What this cannot
// show: races (between barriers the threads run one at a time, in order), the memory model,
// alignment faults other than the ones checked (vector atomics, ldmatrix and cp.async addresses),
// the hardware's fp32 summation order inside mma and __expf's approximation error, and speed.
// Each host thread runs its own launches (the state above is per thread, as is __shared__), so the
// in-process ranks of a multi-rank test can each drive a device step. x86-64 only (the fiber
// switch is a few lines of its assembly).
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/mman.h>

#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
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
// Per host thread (several threads may each run their own launches: the in-process ranks of a
// multi-rank test); within one, the running fiber's indices, set by the scheduler on every switch.
inline thread_local EmuIdx thread_idx, block_idx;
inline thread_local EmuDim grid_dim, block_dim;
inline thread_local std::vector<char> dynamic_smem;
// The block's dynamic shared memory as kernels see it (trivial thread_locals: no TLS wrapper call
// on each access, which the std::vector above would cost).
inline thread_local char* dynamic_smem_base = nullptr;
inline thread_local size_t dynamic_smem_bytes = 0;
inline thread_local int64_t exchange_int[32][32];
inline thread_local double exchange_real[32][32];

template <typename T>
T* dyn_smem() {
  return reinterpret_cast<T*>(dynamic_smem_base);
}

// Dynamic shared memory a kernel may use (cudaFuncAttributeMaxDynamicSharedMemorySize).
inline thread_local std::map<const void*, size_t> max_dynamic_smem;
constexpr size_t kDefaultSmem = 48 * 1024, kMaxSmemSm90 = 227 * 1024;

// True when [p, p + n) lies in the current block's dynamic shared memory.
inline bool in_dynamic_smem(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  return c >= dynamic_smem_base && c + n <= dynamic_smem_base + dynamic_smem_bytes;
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

// ---- The threads of a block are fibers on the calling OS thread. Each runs until it reaches a
// barrier (__syncthreads, __syncwarp and the warp collectives built on it), then the next one
// runs; the last to arrive releases the others. Switching fibers costs a few nanoseconds where
// waking OS threads at every barrier cost microseconds (one thread per CUDA thread made the
// whole device step take ten minutes). A barrier no thread can pass aborts with the block and
// the counts instead of hanging.
struct Fiber {
  enum State { kReady, kAtSyncthreads, kAtSyncwarp, kDone } state = kReady;
  void* sp = nullptr;  // saved stack pointer while switched out
  unsigned wait_generation = 0;
  EmuIdx idx;
};
// Fixed arrays and plain values: the scheduler's state is read at every switch.
inline thread_local Fiber fibers[1024];
inline thread_local unsigned fiber_count = 0, current_fiber = 0, block_generation = 0, block_arrived = 0;
inline thread_local unsigned warp_generation[32], warp_arrived[32];
inline thread_local void* scheduler_sp = nullptr;
inline thread_local void (*block_body)(void*) = nullptr;  // runs the kernel with its arguments
inline thread_local void* block_body_arg = nullptr;
inline thread_local std::exception_ptr fiber_error;  // read only when fiber_failed
inline thread_local bool fiber_failed = false;

struct FiberStacks {  // mmap'd once, reused by every launch; a guard page below each
  static constexpr size_t kBytes = size_t(1) << 20;
  std::vector<char*> stacks;
  char* top(size_t i) {
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("emu: no memory for fiber stacks");
      mprotect(p, 4096, PROT_NONE);
      stacks.push_back(static_cast<char*>(p));
    }
    // Tops offset by a few cache lines each: 1 MiB-aligned tops would all map to the same cache sets.
    return stacks[i] + kBytes - 64 * (i % 61);
  }
  ~FiberStacks() {
    for (char* p : stacks) munmap(p, kBytes);
  }
};
inline thread_local FiberStacks fiber_stacks;
}  // namespace emu

// Saves the callee-saved registers on the current stack, stores its pointer in *save and resumes
// the stack at `load` (System V x86-64). Weak: every translation unit carries a copy.
extern "C" void emu_fiber_switch(void** save, void* load);
asm(R"(
  .text
  .weak emu_fiber_switch
  .type emu_fiber_switch, @function
emu_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_fiber_switch, .-emu_fiber_switch
)");

namespace emu {
inline bool runnable(const Fiber& f, unsigned t) {
  return f.state == Fiber::kReady || (f.state == Fiber::kAtSyncthreads && f.wait_generation != block_generation) ||
         (f.state == Fiber::kAtSyncwarp && f.wait_generation != warp_generation[t / 32]);
}

// Leaves the current fiber (already marked waiting or done; its stack pointer goes to *save) for
// the next runnable one after it, round-robin, switching to it directly; to the scheduler when
// none can run (all done, a deadlock, or a fiber threw).
inline void leave_fiber(void** save) {
  if (!fiber_failed)
    for (unsigned k = 1; k <= fiber_count; ++k) {
      unsigned t = current_fiber + k;
      if (t >= fiber_count) t -= fiber_count;
      Fiber& n = fibers[t];
      if (!runnable(n, t)) continue;
      n.state = Fiber::kReady;
      current_fiber = t;
      thread_idx = n.idx;
      emu_fiber_switch(save, n.sp);
      return;
    }
  emu_fiber_switch(save, scheduler_sp);
}

[[noreturn]] inline void fiber_entry() {
  try {
    block_body(block_body_arg);
  } catch (...) {
    if (!fiber_failed) fiber_error = std::current_exception();
    fiber_failed = true;
  }
  fibers[current_fiber].state = Fiber::kDone;
  void* dead = nullptr;
  leave_fiber(&dead);
  __builtin_unreachable();
}

// A fresh stack whose first switch "returns" into fiber_entry with the ABI's alignment.
inline void* fresh_stack(char* top) {
  auto* sp = reinterpret_cast<uintptr_t*>(reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15));
  *--sp = 0;  // fiber_entry's return address: none
  *--sp = reinterpret_cast<uintptr_t>(&fiber_entry);
  for (int r = 0; r < 6; ++r) *--sp = 0;  // rbp rbx r12-r15
  return sp;
}

inline void wait(Fiber::State at, unsigned generation) {
  Fiber& f = fibers[current_fiber];
  f.state = at;
  f.wait_generation = generation;
  leave_fiber(&f.sp);
}
inline void sync_block() {
  if (++block_arrived == fiber_count) {  // the last to arrive goes on; the others resume later
    block_arrived = 0;
    ++block_generation;
    return;
  }
  wait(Fiber::kAtSyncthreads, block_generation);
}
inline void sync_warp() {
  const unsigned w = current_fiber / 32;
  if (++warp_arrived[w] == 32) {
    warp_arrived[w] = 0;
    ++warp_generation[w];
    return;
  }
  wait(Fiber::kAtSyncwarp, warp_generation[w]);
}

[[noreturn]] inline void report_deadlock() {
  unsigned at_block = 0, at_warp = 0, done = 0;
  for (unsigned t = 0; t < fiber_count; ++t) {
    const Fiber& f = fibers[t];
    at_block += f.state == Fiber::kAtSyncthreads;
    at_warp += f.state == Fiber::kAtSyncwarp;
    done += f.state == Fiber::kDone;
  }
  std::fprintf(stderr,
               "emu: barrier deadlock in block (%u, %u): %u threads at __syncthreads, %u at a warp barrier, "
               "%u exited\n",
               block_idx.x, block_idx.y, at_block, at_warp, done);
  std::abort();
}

// Runs the block's fibers until all have returned: fiber 0 first, then each hands over to the
// next runnable one (leave_fiber); control comes back here only when none can run.
inline void run_block(unsigned threads_per_block) {
  fiber_count = threads_per_block;
  for (unsigned w = 0; w < threads_per_block / 32; ++w) warp_generation[w] = warp_arrived[w] = 0;
  block_arrived = 0;
  for (unsigned t = 0; t < threads_per_block; ++t) {
    fibers[t] = Fiber{};
    fibers[t].idx = {t % block_dim.x, t / block_dim.x, 0};
    fibers[t].sp = fresh_stack(fiber_stacks.top(t));
  }
  current_fiber = 0;
  thread_idx = fibers[0].idx;
  emu_fiber_switch(&scheduler_sp, fibers[0].sp);
  if (fiber_failed) {
    fiber_failed = false;
    std::rethrow_exception(std::exchange(fiber_error, nullptr));
  }
  for (unsigned t = 0; t < threads_per_block; ++t)
    if (fibers[t].state != Fiber::kDone) report_deadlock();
}

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
  auto call = [&] { kernel(args...); };
  block_body = [](void* f) { (*static_cast<decltype(call)*>(f))(); };
  block_body_arg = &call;
  // The blocks run one after another, x fastest.
  for (unsigned by = 0; by < c.grid.y; ++by)
    for (unsigned bx = 0; bx < c.grid.x; ++bx) {
      dynamic_smem.assign(c.smem + 16, char(0x5a));
      dynamic_smem_base = dynamic_smem.data();
      dynamic_smem_bytes = dynamic_smem.size();
      block_idx = {bx, by, 0};
      run_block(threads_per_block);
    }
}
}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define gridDim emu::grid_dim
#define blockDim emu::block_dim

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::sync_warp(); }
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
