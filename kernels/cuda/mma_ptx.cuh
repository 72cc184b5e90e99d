// Inline-PTX wrappers of the bf16 tensor-core path (flash_attention.cu): mma.m16n8k16, ldmatrix
// .x2 .trans and cp.async. Kept apart so that the host emulation (tests/gpu/emu/include/kernels/
// cuda/mma_ptx.cuh, found first on its include path) can replace exactly these with C++ twins of
// the PTX semantics and run the kernels that use them on a machine without a GPU.
#pragma once
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace moe::cuda {

// D (16x8, fp32) += A (16x16, bf16, row) * B (16x8, bf16, col): the tensor-core instruction. Lane l
// holds, with g = l / 4 and c = 2 (l % 4): a[0] = A[g][c..c+1], a[1] = A[g+8][c..], a[2] = A[g][c+8..],
// a[3] = A[g+8][c+8..]; b[0] = B[c..c+1][g], b[1] = B[c+8..c+9][g]; d[0..1] = D[g][c..c+1],
// d[2..3] = D[g+8][c..c+1] (PTX ISA, mma.m16n8k16). An accumulator pair of n-tiles 2j, 2j+1 thus
// holds exactly the A fragment of k-block j, which is how P and dS feed the next product unmoved.
__device__ __forceinline__ void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The same B fragment from a tile stored k-major (row-major [k][n], row stride ld): ldmatrix .x2
// .trans, lanes 0-15 naming rows k0..k0+15 at column n0 (16-byte aligned rows: ld * 2 % 16 == 0).
// Transposed, lane l receives [k0 + c][n0 + g] and [k0 + c + 1][n0 + g] of each 8x8 matrix, the
// mma B layout.
__device__ __forceinline__ void load_b_trans(uint32_t& b0, uint32_t& b1, const bf16* t, int ld, int n0, int k0) {
  const bf16* p = t + (k0 + (threadIdx.x & 15)) * ld + n0;
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(b0), "=r"(b1) : "r"(addr));
}

// cp.async (16 bytes, L2 only): global -> shared without staging in registers, so the next tile
// streams in while the current one is computed (double buffering).
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace moe::cuda
