// Emulation stand-in for <cuda_runtime.h> (see ../run.sh): "device" memory is host memory and every
// call runs synchronously, so streams only serve as keys.
#pragma once
#include <chrono>

#include "emu_runtime.h"

using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16BF = 14 };
inline const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
constexpr unsigned cudaStreamNonBlocking = 1;

template <typename T>
cudaError_t cudaMalloc(T** p, size_t n) {
  *p = static_cast<T*>(std::malloc(n > 0 ? n : 1));
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
template <typename T>
cudaError_t cudaMallocAsync(T** p, size_t n, cudaStream_t) {
  return cudaMalloc(p, n);
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
// The opt-in that emu::launch checks: beyond 48 KiB of dynamic shared memory, up to sm_90's 227 KiB.
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute, int bytes) {
  if (bytes < 0 || size_t(bytes) > emu::kMaxSmemSm90) throw std::runtime_error("emu: shared memory beyond sm_90's");
  emu::max_dynamic_smem[reinterpret_cast<const void*>(kernel)] = size_t(bytes);
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaMemset(void* p, int v, size_t n) { std::memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { return cudaMemset(p, v, n); }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  if (n > 0) std::memcpy(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t) {
  return cudaMemcpy(d, s, n, k);
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
// Distinct handles, so per-stream caches see different streams.
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static char handles[64];
  static std::atomic<int> next{0};
  *s = &handles[++next % 64];
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamGetId(cudaStream_t s, unsigned long long* id) {
  *id = static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(s));
  return cudaSuccess;
}
// Events hold the host time of their record: every call ran to completion by then.
struct EmuEvent {
  std::chrono::steady_clock::time_point at;
};
using cudaEvent_t = EmuEvent*;
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new EmuEvent{std::chrono::steady_clock::now()}; return cudaSuccess; }
constexpr unsigned cudaEventDisableTiming = 2;
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  e->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t begin, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - begin->at).count();
  return cudaSuccess;
}
