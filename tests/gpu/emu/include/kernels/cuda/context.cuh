// Emulation stand-in for kernels/cuda/context.cuh: one emulated device, so MOE_REQUIRE_GPU runs.
#pragma once
namespace moe::cuda {
inline int device_count() { return 1; }
}  // namespace moe::cuda
