// Emulated twin of kernels/cuda/mma_ptx.cuh (found first on the emulator's include path, see
// ../../../run.sh): the same functions, with each PTX instruction replaced by C++ that follows the
// PTX ISA. The warp's lanes exchange their registers through emu arrays between two warp barriers
// (__syncwarp), so a lane that skips the instruction hangs the run, as a diverged .sync.aligned
// instruction is undefined on the device.
//   mma16816      mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: the A (16x16) and B (16x8)
//                 tiles are rebuilt from all 32 lanes' fragments (layout below), each lane then adds
//                 its four D elements, bf16 products (exact in fp32) summed in fp32 in k order. The
//                 tensor core's own summation order and intermediate rounding are not reproduced:
//                 results may differ from the device in the last bits of fp32, never in layout.
//   load_b_trans  ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16: lanes 0-7 give the row addresses of
//                 matrix 0, lanes 8-15 of matrix 1 (16 bytes each: 16-byte aligned and inside the
//                 block's dynamic shared memory, else the run aborts, as the device faults); lane l
//                 receives elements [2 (l % 4)][l / 4] and [2 (l % 4) + 1][l / 4] of each matrix,
//                 the first in the low 16 bits.
//   cp_async16    cp.async.cg.shared.global, 16 bytes: a plain copy done at once (same alignment and
//                 shared-memory checks); cp_async_commit and cp_async_wait are no-ops. So the
//                 emulation cannot show a missing or too-weak cp.async.wait_group: data always lands
//                 before the next instruction. (The barrier that must follow the wait still matters:
//                 other threads' copies are only ordered by __syncthreads.)
// The address arithmetic of load_b_trans is copied from the real header: keep the two in step.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/common.cuh"

namespace moe::cuda {

namespace emu_ptx {
// Per warp (at most 32) and lane: the registers and addresses a warp instruction gathers.
inline thread_local uint32_t a_regs[32][32][4], b_regs[32][32][2];
inline thread_local const void* row_addr[32][32];

[[noreturn]] inline void fault(const char* what, const void* p) {
  std::fprintf(stderr, "emu: %s (address %p, thread %u of block %u,%u)\n", what, p, threadIdx.x, blockIdx.x,
               blockIdx.y);
  std::abort();
}
inline void check_shared16(const void* p, const char* instruction) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fault(instruction, p);
  if (!::emu::in_dynamic_smem(p, 16)) fault(instruction, p);
}
inline float lo(uint32_t r) { return __uint_as_float(r << 16); }
inline float hi(uint32_t r) { return __uint_as_float(r & 0xffff0000u); }
}  // namespace emu_ptx

// D (16x8, fp32) += A (16x16, bf16, row) * B (16x8, bf16, col). Lane l holds, with g = l / 4 and
// c = 2 (l % 4): a[0] = A[g][c..c+1], a[1] = A[g+8][c..], a[2] = A[g][c+8..], a[3] = A[g+8][c+8..];
// b[0] = B[c..c+1][g], b[1] = B[c+8..c+9][g]; d[0..1] = D[g][c..c+1], d[2..3] = D[g+8][c..c+1];
// the low 16 bits of a register hold the lower-index element.
inline void mma16816(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  using namespace emu_ptx;
  const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = 0; i < 4; ++i) a_regs[w][lane][i] = a[i];
  b_regs[w][lane][0] = b0;
  b_regs[w][lane][1] = b1;
  __syncwarp();
  float A[16][16], B[16][8];
  for (unsigned q = 0; q < 32; ++q) {
    const unsigned g = q / 4, c = 2 * (q % 4);
    const uint32_t* r = a_regs[w][q];
    A[g][c] = lo(r[0]), A[g][c + 1] = hi(r[0]);
    A[g + 8][c] = lo(r[1]), A[g + 8][c + 1] = hi(r[1]);
    A[g][c + 8] = lo(r[2]), A[g][c + 9] = hi(r[2]);
    A[g + 8][c + 8] = lo(r[3]), A[g + 8][c + 9] = hi(r[3]);
    B[c][g] = lo(b_regs[w][q][0]), B[c + 1][g] = hi(b_regs[w][q][0]);
    B[c + 8][g] = lo(b_regs[w][q][1]), B[c + 9][g] = hi(b_regs[w][q][1]);
  }
  __syncwarp();  // every lane has read the exchange before the next instruction rewrites it
  const unsigned g = lane / 4, c = 2 * (lane % 4);
  const unsigned rows[4] = {g, g, g + 8, g + 8}, cols[4] = {c, c + 1, c, c + 1};
  for (int i = 0; i < 4; ++i) {
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += A[rows[i]][k] * B[k][cols[i]];
    d[i] = acc;
  }
}

// The same B fragment from a tile stored k-major (row-major [k][n], row stride ld): ldmatrix .x2
// .trans, lanes 0-15 naming rows k0..k0+15 at column n0.
inline void load_b_trans(uint32_t& b0, uint32_t& b1, const bf16* t, int ld, int n0, int k0) {
  using namespace emu_ptx;
  const bf16* p = t + (k0 + (threadIdx.x & 15)) * ld + n0;
  const unsigned w = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane < 16) check_shared16(p, "ldmatrix row address not 16-byte aligned shared memory");
  row_addr[w][lane] = p;
  __syncwarp();
  const unsigned g = lane / 4, c = 2 * (lane % 4);
  uint32_t out[2];
  for (unsigned m = 0; m < 2; ++m) {
    const auto* r0 = static_cast<const bf16*>(row_addr[w][8 * m + c]);
    const auto* r1 = static_cast<const bf16*>(row_addr[w][8 * m + c + 1]);
    out[m] = uint32_t(__bfloat16_as_ushort(r0[g])) | uint32_t(__bfloat16_as_ushort(r1[g])) << 16;
  }
  __syncwarp();
  b0 = out[0];
  b1 = out[1];
}

// cp.async, 16 bytes: copied at once (see the top of this file).
inline void cp_async16(void* dst, const void* src) {
  emu_ptx::check_shared16(dst, "cp.async destination not 16-byte aligned shared memory");
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) emu_ptx::fault("cp.async source not 16-byte aligned", src);
  std::memcpy(dst, src, 16);
}
inline void cp_async_commit() {}
template <int N>
inline void cp_async_wait() {}

}  // namespace moe::cuda
