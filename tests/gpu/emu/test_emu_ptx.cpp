// The emulated PTX of include/kernels/cuda/mma_ptx.cuh against the PTX ISA, independently of any
// kernel: mma.m16n8k16 against a double-precision matrix product (two warps with different
// operands, and 256 products back to back in one warp, so exchanges must not mix), ldmatrix .x2
// .trans against the element formula, and the faults the emulation reports instead of reading
// wrong memory. Built by run.sh --flash.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/cuda/mma_ptx.cuh"
#include "tests/unit/gradcheck.h"

namespace moe::cuda {
namespace {

uint32_t pack(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r = 0;
  std::memcpy(&r, &v, 4);
  return r;
}
std::vector<float> bf16_values(int64_t n, uint64_t seed) {
  auto x = test::random_floats(n, seed);
  for (auto& v : x) v = __bfloat162float(__float2bfloat16_rn(v));
  return x;
}

// Per warp w: A_w (16x16 row-major), B_w (16x8 row-major [k][n]), D_w (16x8) += A_w B_w, every
// register placed by the PTX ISA's m16n8k16 fragment layout.
void mma_kernel(float* d, const float* a, const float* b) {
  const int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = 2 * (lane % 4);
  const float* A = a + w * 256;
  const float* B = b + w * 128;
  float* D = d + w * 128;
  const uint32_t ar[4] = {pack(A[g * 16 + c], A[g * 16 + c + 1]), pack(A[(g + 8) * 16 + c], A[(g + 8) * 16 + c + 1]),
                          pack(A[g * 16 + c + 8], A[g * 16 + c + 9]),
                          pack(A[(g + 8) * 16 + c + 8], A[(g + 8) * 16 + c + 9])};
  const uint32_t b0 = pack(B[c * 8 + g], B[(c + 1) * 8 + g]), b1 = pack(B[(c + 8) * 8 + g], B[(c + 9) * 8 + g]);
  float acc[4] = {D[g * 8 + c], D[g * 8 + c + 1], D[(g + 8) * 8 + c], D[(g + 8) * 8 + c + 1]};
  mma16816(acc, ar, b0, b1);
  D[g * 8 + c] = acc[0], D[g * 8 + c + 1] = acc[1], D[(g + 8) * 8 + c] = acc[2], D[(g + 8) * 8 + c + 1] = acc[3];
}

TEST(EmuPtx, MmaIsTheMatrixProductPerWarp) {
  const auto a = bf16_values(2 * 256, 1), b = bf16_values(2 * 128, 2), d0 = test::random_floats(2 * 128, 3);
  auto d = d0;
  emu::launch(emu::config(1, 64), mma_kernel, d.data(), a.data(), b.data());
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        double want = d0[w * 128 + i * 8 + j];
        for (int k = 0; k < 16; ++k) want += double(a[w * 256 + i * 16 + k]) * b[w * 128 + k * 8 + j];
        EXPECT_NEAR(d[w * 128 + i * 8 + j], want, 1e-5) << "warp " << w << " D[" << i << "][" << j << "]";
      }
}

// D += A_i B_i for i < n, back to back in one warp: a lane that rewrites its exchange slot for
// product i + 1 before the slowest lane has read product i would corrupt it.
void mma_chain_kernel(float* d, const float* a, const float* b, int n) {
  const int lane = threadIdx.x % 32, g = lane / 4, c = 2 * (lane % 4);
  float acc[4] = {};
  for (int i = 0; i < n; ++i) {
    const float* A = a + i * 256;
    const float* B = b + i * 128;
    const uint32_t ar[4] = {pack(A[g * 16 + c], A[g * 16 + c + 1]), pack(A[(g + 8) * 16 + c], A[(g + 8) * 16 + c + 1]),
                            pack(A[g * 16 + c + 8], A[g * 16 + c + 9]),
                            pack(A[(g + 8) * 16 + c + 8], A[(g + 8) * 16 + c + 9])};
    mma16816(acc, ar, pack(B[c * 8 + g], B[(c + 1) * 8 + g]), pack(B[(c + 8) * 8 + g], B[(c + 9) * 8 + g]));
  }
  d[g * 8 + c] = acc[0], d[g * 8 + c + 1] = acc[1], d[(g + 8) * 8 + c] = acc[2], d[(g + 8) * 8 + c + 1] = acc[3];
}

TEST(EmuPtx, BackToBackMmasDoNotMix) {
  const int n = 256;
  const auto a = bf16_values(n * 256, 8), b = bf16_values(n * 128, 9);
  std::vector<float> d(128);
  emu::launch(emu::config(1, 32), mma_chain_kernel, d.data(), a.data(), b.data(), n);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double want = 0;
      for (int p = 0; p < n; ++p)
        for (int k = 0; k < 16; ++k) want += double(a[p * 256 + i * 16 + k]) * b[p * 128 + k * 8 + j];
      // 4096 products in (-1, 1), summed in fp32 in a fixed order (so the result is reproducible):
      // |error| <= 4096 * 2^-24 * sum |terms| ~ 0.25 at worst, ~1e-5 in practice; an exchange
      // mixed with the next product's operands moves an entry by O(1).
      EXPECT_NEAR(d[i * 8 + j], want, 1e-3) << "D[" << i << "][" << j << "]";
    }
}

// ldmatrix .x2 .trans of the 16 x 8 block at column n0 of a 16 x 24 k-major bf16 tile (row stride
// 24: 48-byte rows, 16-byte aligned); every lane's two registers are stored to `out`.
void ldmatrix_kernel(uint32_t* out, const float* tile, int ld, int n0) {
  bf16* s = emu::dyn_smem<bf16>();
  for (int i = threadIdx.x; i < 16 * ld; i += 32) s[i] = __float2bfloat16_rn(tile[i]);
  __syncwarp();
  uint32_t b0 = 0, b1 = 0;
  load_b_trans(b0, b1, s, ld, n0, 0);
  out[2 * threadIdx.x] = b0;
  out[2 * threadIdx.x + 1] = b1;
}

TEST(EmuPtx, LdmatrixTransGivesTheMmaBFragment) {
  const int ld = 24, n0 = 8;
  const auto tile = bf16_values(16 * ld, 4);
  std::vector<uint32_t> out(64);
  emu::launch(emu::config(1, 32, 16 * ld * sizeof(bf16)), ldmatrix_kernel, out.data(), tile.data(), ld, n0);
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, c = 2 * (lane % 4);
    // matrix m holds rows 8m..8m+7; lane l receives [2 (l % 4)][l / 4] and the next row, low first
    EXPECT_EQ(out[2 * lane], pack(tile[c * ld + n0 + g], tile[(c + 1) * ld + n0 + g])) << "lane " << lane;
    EXPECT_EQ(out[2 * lane + 1], pack(tile[(c + 8) * ld + n0 + g], tile[(c + 9) * ld + n0 + g])) << "lane " << lane;
  }
}

// The device faults on these; the emulation aborts with a message instead of reading on.
TEST(EmuPtxDeathTest, LdmatrixRowsMustBeAlignedSharedMemory) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // OpenBLAS keeps threads
  std::vector<uint32_t> out(64);
  const auto tile = bf16_values(16 * 24, 5);
  // row stride 20 bf16 = 40 bytes: rows 1, 3, ... are not 16-byte aligned
  EXPECT_DEATH(emu::launch(emu::config(1, 32, 16 * 24 * sizeof(bf16)), ldmatrix_kernel, out.data(), tile.data(), 20, 0),
               "ldmatrix row address");
  // a column offset of 4 bf16 (8 bytes)
  EXPECT_DEATH(emu::launch(emu::config(1, 32, 16 * 24 * sizeof(bf16)), ldmatrix_kernel, out.data(), tile.data(), 24, 4),
               "ldmatrix row address");
}

void cp_async_kernel(float* dst, const float* src, bool to_shared) {
  float* s = emu::dyn_smem<float>();
  cp_async16(to_shared ? s + 4 * threadIdx.x : dst + 4 * threadIdx.x, src + 4 * threadIdx.x);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  dst[threadIdx.x] = s[threadIdx.x];
}

TEST(EmuPtx, CpAsyncCopiesSixteenBytes) {
  const auto src = test::random_floats(128, 6);
  std::vector<float> dst(32);
  emu::launch(emu::config(1, 32, 128 * sizeof(float)), cp_async_kernel, dst.data(), src.data(), true);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(dst[i], src[i]);
}

TEST(EmuPtxDeathTest, CpAsyncNeedsSharedDestinationAndAlignedSource) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto src = test::random_floats(132, 7);
  std::vector<float> dst(128);
  EXPECT_DEATH(emu::launch(emu::config(1, 32, 128 * sizeof(float)), cp_async_kernel, dst.data(), src.data(), false),
               "cp.async destination");
  EXPECT_DEATH(emu::launch(emu::config(1, 32, 128 * sizeof(float)), cp_async_kernel, dst.data(), src.data() + 1, true),
               "cp.async source");
}

// Barriers: every thread reaches __syncthreads before any goes past it; a thread that skips one
// (or a lane that skips a warp barrier) is a deadlock the emulation reports instead of hanging.
void barrier_kernel(int* out, int skipper, bool warp_level) {
  int* s = emu::dyn_smem<int>();
  s[threadIdx.x] = int(threadIdx.x) + 1;
  if (int(threadIdx.x) != skipper) {
    if (warp_level)
      __syncwarp();
    else
      __syncthreads();
  }
  int sum = 0;
  for (unsigned t = 0; t < blockDim.x; ++t) sum += s[t];
  out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
}

TEST(EmuPtx, SyncthreadsOrdersSharedMemoryAcrossWarps) {
  std::vector<int> out(2 * 96);
  emu::launch(emu::config(2, 96, 96 * sizeof(int)), barrier_kernel, out.data(), -1, false);
  for (int v : out) EXPECT_EQ(v, 96 * 97 / 2);
}

TEST(EmuPtxDeathTest, MissedBarrierIsReportedNotHung) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<int> out(64);
  EXPECT_DEATH(emu::launch(emu::config(1, 64, 64 * sizeof(int)), barrier_kernel, out.data(), 5, false),
               "barrier deadlock in block \\(0, 0\\): 63 threads at __syncthreads, 0 at a warp barrier, 1 exited");
  EXPECT_DEATH(emu::launch(emu::config(1, 64, 64 * sizeof(int)), barrier_kernel, out.data(), 40, true),
               "barrier deadlock in block \\(0, 0\\): 0 threads at __syncthreads, 31 at a warp barrier, 33 exited");
}

}  // namespace
}  // namespace moe::cuda
