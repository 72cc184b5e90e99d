// The bf16 GEMM (kernels/cpu/gemm_bf16.h). A is packed as bf16 rows [M][Kp] (Kp = K rounded up
// to even, zero padded); B in the "VNNI" layout [Kp/2][Np][2] (Np = N rounded up to 16): for each
// pair of k, the pairs of all columns side by side, so that one vdpbf16ps multiplies a broadcast
// pair of A by 16 columns of B. The micro-kernel keeps an 8 x 32 block of C in 16 registers.
#include "kernels/cpu/gemm_bf16.h"

#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/half.h"
#include "src/core/error.h"

namespace moe::ops {

namespace {

bool g_enabled = true;

#define MOE_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int64_t kRows = 8, kCols = 32, kRowChunk = 128;
constexpr int64_t kParallelWork = int64_t(1) << 20;  // multiply-adds below which one thread is faster

// The pack and block functions run inside the one parallel region of gemm_bf16 (orphaned
// worksharing loops), so that a GEMM synchronises its threads twice, not once per block row:
// barriers are what costs most on a loaded machine.

// A[m][k] = a[m*rs + k*cs] -> bf16 [M][Kp].
void pack_a(uint16_t* A, const float* a, int64_t M, int64_t K, int64_t Kp, int64_t rs, int64_t cs) {
  if (cs == 1) {
#pragma omp for schedule(static) nowait
    for (int64_t m = 0; m < M; ++m) {
      half::fp32_to_bf16(A + m * Kp, a + m * rs, K);
      for (int64_t k = K; k < Kp; ++k) A[m * Kp + k] = 0;
    }
    return;
  }
  MOE_CHECK(rs == 1, "gemm_bf16: operand A needs a unit stride");
  // A transposed in memory: blocks of kTile rows of A, read as kTile contiguous floats per k.
  constexpr int64_t kTile = 16;
#pragma omp for schedule(static) nowait
  for (int64_t m0 = 0; m0 < M; m0 += kTile) {
    const int64_t rows = std::min(kTile, M - m0);
    uint16_t tile[kTile];
    for (int64_t k = 0; k < K; ++k) {
      half::fp32_to_bf16(tile, a + m0 + k * cs, rows);
      for (int64_t j = 0; j < rows; ++j) A[(m0 + j) * Kp + k] = tile[j];
    }
    for (int64_t j = 0; j < rows; ++j)
      for (int64_t k = K; k < Kp; ++k) A[(m0 + j) * Kp + k] = 0;
  }
}

// B[n][k] = b[n*rs + k*cs] -> VNNI [Kp/2][Np][2] (zero padded).
void pack_b(uint16_t* B, const float* b, int64_t N, int64_t K, int64_t Np, int64_t Kp, int64_t rs, int64_t cs) {
  const int64_t pairs = Kp / 2;
  if (cs == 1) {  // rows of B are contiguous along k: convert a row, then spread its pairs
    std::vector<uint16_t> row(size_t(Kp), 0);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < Np; ++n) {
      if (n < N) half::fp32_to_bf16(row.data(), b + n * rs, K);
      else std::fill(row.begin(), row.end(), uint16_t(0));
      for (int64_t p = 0; p < pairs; ++p) std::memcpy(B + (p * Np + n) * 2, row.data() + 2 * p, 4);
    }
    return;
  }
  MOE_CHECK(rs == 1, "gemm_bf16: operand B needs a unit stride");
  // Rows k and k+1 (contiguous along n) interleave into one row of pairs.
  std::vector<uint16_t> r0(size_t(Np), 0), r1(size_t(Np), 0);
#pragma omp for schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t k = 2 * p;
    half::fp32_to_bf16(r0.data(), b + k * cs, N);
    if (k + 1 < K) half::fp32_to_bf16(r1.data(), b + (k + 1) * cs, N);
    else std::fill(r1.begin(), r1.end(), uint16_t(0));
    uint16_t* out = B + p * Np * 2;
    for (int64_t n = 0; n < N; ++n) {
      out[2 * n] = r0[size_t(n)];
      out[2 * n + 1] = r1[size_t(n)];
    }
    for (int64_t n = N; n < Np; ++n) out[2 * n] = out[2 * n + 1] = 0;
  }
}

// C[R, 32 masked] (+)= A[R rows of lda] . B[pairs][Np][2] (the panel's first column at B).
template <int R>
MOE_BF16_TARGET void micro_kernel(float* C, int64_t ldc, const uint16_t* A, int64_t lda, int64_t pairs,
                                  const uint16_t* B, int64_t Np, __mmask16 m0, __mmask16 m1, bool accumulate) {
  __m512 c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * Np * 2);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + p * Np * 2 + 32);
    for (int r = 0; r < R; ++r) {
      uint32_t pair;
      std::memcpy(&pair, A + r * lda + 2 * p, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(pair));
      c0[r] = _mm512_dpbf16_ps(c0[r], a, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], a, b1);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* c = C + r * ldc;
    if (accumulate) {
      c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), c0[r]);
      c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}

__mmask16 lane_mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1); }

MOE_BF16_TARGET void run_blocks(float* C, int64_t ldc, const uint16_t* A, const uint16_t* B, int64_t M, int64_t N,
                                int64_t Kp, int64_t Np, bool accumulate) {
  const int64_t panels = (N + kCols - 1) / kCols, chunks = (M + kRowChunk - 1) / kRowChunk;
  // Tasks in chunk-major order: a thread's consecutive tasks share a chunk of rows of A, which
  // stays in cache while panels of B pass over it (a dynamic schedule measured no faster).
#pragma omp for schedule(static)
  for (int64_t task = 0; task < chunks * panels; ++task) {
    const int64_t i0 = task / panels * kRowChunk, i1 = std::min(M, i0 + kRowChunk);
    const int64_t j0 = task % panels * kCols, cols = std::min(kCols, N - j0);
    const __mmask16 m0 = lane_mask(cols), m1 = lane_mask(cols - 16);
    int64_t i = i0;
    for (; i + kRows <= i1; i += kRows)
      micro_kernel<kRows>(C + i * ldc + j0, ldc, A + i * Kp, Kp, Kp / 2, B + j0 * 2, Np, m0, m1, accumulate);
    for (; i < i1; ++i)
      micro_kernel<1>(C + i * ldc + j0, ldc, A + i * Kp, Kp, Kp / 2, B + j0 * 2, Np, m0, m1, accumulate);
  }
}

thread_local std::vector<uint16_t> t_a, t_b;

}  // namespace

MOE_BF16_TARGET void gemm_bf16_packed(float* C, int64_t ldc, const uint16_t* A, int64_t lda, const uint16_t* B,
                                      int64_t ldb, int64_t M, int64_t N, int64_t K, bool accumulate) {
  MOE_CHECK(lda % 2 == 0 && lda >= K && ldb >= (N + kCols - 1) / kCols * kCols, "gemm_bf16_packed: bad strides");
  const int64_t pairs = (K + 1) / 2;
  for (int64_t j0 = 0; j0 < N; j0 += kCols) {
    const int64_t cols = std::min(kCols, N - j0);
    const __mmask16 m0 = lane_mask(cols), m1 = lane_mask(cols - 16);
    int64_t i = 0;
    for (; i + kRows <= M; i += kRows)
      micro_kernel<kRows>(C + i * ldc + j0, ldc, A + i * lda, lda, pairs, B + j0 * 2, ldb, m0, m1, accumulate);
    for (; i < M; ++i)
      micro_kernel<1>(C + i * ldc + j0, ldc, A + i * lda, lda, pairs, B + j0 * 2, ldb, m0, m1, accumulate);
  }
}

bool gemm_bf16_available() { return g_enabled && half::has_avx512_bf16(); }
void set_gemm_bf16_enabled(bool on) { g_enabled = on; }

void gemm_bf16(float* C, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t b_rs,
               int64_t b_cs, int64_t M, int64_t N, int64_t K, bool accumulate) {
  MOE_CHECK(half::has_avx512_bf16(), "gemm_bf16 needs AVX-512 BF16");
  if (M == 0 || N == 0) return;
  const int64_t Kp = (K + 1) / 2 * 2, Np = (N + 15) / 16 * 16 + 16;  // + 16: the second half of the last panel
  t_a.resize(size_t(M * Kp));
  t_b.resize(size_t(Kp / 2 * Np * 2));
  uint16_t *A = t_a.data(), *B = t_b.data();
#pragma omp parallel if (M * N * std::max<int64_t>(K, 1) >= kParallelWork)
  {
    pack_a(A, a, M, K, Kp, a_rs, a_cs);
    pack_b(B, b, N, K, Np, Kp, b_rs, b_cs);  // its loop's barrier also waits for pack_a
    run_blocks(C, ldc, A, B, M, N, Kp, Np, accumulate);
  }
}

}  // namespace moe::ops
