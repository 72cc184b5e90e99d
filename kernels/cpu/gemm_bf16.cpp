// The bf16 GEMM (kernels/cpu/gemm_bf16.h). A is packed as bf16 rows [M][Kp] (Kp = K rounded up
// to even, zero padded) when its rows are contiguous, else by pairs of k, [Kp/2][M][2] (two rows
// of the source interleaved: contiguous reads and writes); B in the "VNNI" layout [Kp/2][Np][2]
// (Np = N rounded up to 16): for each pair of k, the pairs of all columns side by side, so that
// one vdpbf16ps multiplies a broadcast pair of A by 16 columns of B. The micro-kernel keeps an
// 8 x 32 block of C in 16 registers.
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
// k runs in blocks of 512 (256 pairs): a block of a B panel (32 KB) stays in L1/L2 while the rows
// of a chunk pass over it. With k = 2048 (the weight gradient of a 2048-token batch) unblocked,
// the panel streamed from memory: 290 -> 360-390 GFLOP/s on one thread here.
constexpr int64_t kPairBlock = 256;
constexpr int64_t kParallelWork = int64_t(1) << 20;  // multiply-adds below which one thread is faster

// The pack and block functions run inside the one parallel region of gemm_bf16 (orphaned
// worksharing loops), so that a GEMM synchronises its threads twice, not once per block row:
// barriers are what costs most on a loaded machine.

// Rows k and k+1 of a matrix contiguous along n (ld apart) -> pairs [n][2] (out: 2 * N values);
// a missing row k+1 (k + 1 == K) reads as zeros.
void interleave_rows(uint16_t* out, const float* row0, const float* row1, int64_t N, std::vector<uint16_t>& r0,
                     std::vector<uint16_t>& r1) {
  r0.resize(size_t(N));
  r1.assign(size_t(N), 0);
  half::fp32_to_bf16(r0.data(), row0, N);
  if (row1) half::fp32_to_bf16(r1.data(), row1, N);
  for (int64_t n = 0; n < N; ++n) {
    out[2 * n] = r0[size_t(n)];
    out[2 * n + 1] = r1[size_t(n)];
  }
}

// A[m][k] = a[m*rs + k*cs] -> bf16 rows [M][Kp] (cs == 1) or pairs of k [Kp/2][M][2] (rs == 1).
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
  std::vector<uint16_t> r0, r1;
#pragma omp for schedule(static) nowait
  for (int64_t p = 0; p < Kp / 2; ++p)
    interleave_rows(A + p * M * 2, a + 2 * p * cs, 2 * p + 1 < K ? a + (2 * p + 1) * cs : nullptr, M, r0, r1);
}

// B[n][k] = b[n*rs + k*cs] -> VNNI [Kp/2][Np][2] (zero padded).
void pack_b(uint16_t* B, const float* b, int64_t N, int64_t K, int64_t Np, int64_t Kp, int64_t rs, int64_t cs) {
  const int64_t pairs = Kp / 2;
  if (cs == 1) {
    // Rows of B are contiguous along k: 16 rows converted into a tile, then each pair of k of the
    // 16 columns written as one 64-byte line (Np is a multiple of 16).
    constexpr int64_t kTile = 16;
    std::vector<uint32_t> tile(size_t(kTile * pairs));
    uint32_t* B32 = reinterpret_cast<uint32_t*>(B);
#pragma omp for schedule(static)
    for (int64_t n0 = 0; n0 < Np; n0 += kTile) {
      for (int64_t j = 0; j < kTile; ++j) {
        uint16_t* row = reinterpret_cast<uint16_t*>(tile.data() + j * pairs);
        if (n0 + j < N) half::fp32_to_bf16(row, b + (n0 + j) * rs, K);
        const int64_t from = n0 + j < N ? K : 0;
        std::fill(row + from, row + Kp, uint16_t(0));
      }
      for (int64_t p = 0; p < pairs; ++p)
        for (int64_t j = 0; j < kTile; ++j) B32[p * Np + n0 + j] = tile[size_t(j * pairs + p)];
    }
    return;
  }
  MOE_CHECK(rs == 1, "gemm_bf16: operand B needs a unit stride");
  // Rows k and k+1 (contiguous along n) interleave into one row of pairs.
  std::vector<uint16_t> r0, r1;
#pragma omp for schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    uint16_t* out = B + p * Np * 2;
    interleave_rows(out, b + 2 * p * cs, 2 * p + 1 < K ? b + (2 * p + 1) * cs : nullptr, N, r0, r1);
    std::fill(out + 2 * N, out + 2 * Np, uint16_t(0));
  }
}

// C[R, 32 masked] (+)= A . B[pairs][Np][2] (the panel's first column at B); the pair p of row r of
// A at A + r * a_rs + p * a_ps (rows: a_rs = Kp, a_ps = 2; pairs of k: a_rs = 2, a_ps = 2M).
template <int R>
MOE_BF16_TARGET void micro_kernel(float* C, int64_t ldc, const uint16_t* A, int64_t a_rs, int64_t a_ps, int64_t pairs,
                                  const uint16_t* B, int64_t Np, __mmask16 m0, __mmask16 m1, bool accumulate) {
  __m512 c0[R], c1[R];
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  if (accumulate)  // C's rows come in while the k loop runs (dinp 2048 x 512 x 512: 3.2 -> 2.9 ms)
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 16), _MM_HINT_T0);
    }
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * Np * 2);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + p * Np * 2 + 32);
    for (int r = 0; r < R; ++r) {
      uint32_t pair;
      std::memcpy(&pair, A + r * a_rs + p * a_ps, 4);
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

MOE_BF16_TARGET void run_blocks(float* C, int64_t ldc, const uint16_t* A, int64_t a_rs, int64_t a_ps,
                                const uint16_t* B, int64_t M, int64_t N, int64_t Kp, int64_t Np, bool accumulate) {
  const int64_t panels = (N + kCols - 1) / kCols, chunks = (M + kRowChunk - 1) / kRowChunk;
  // Tasks in chunk-major order: a thread's consecutive tasks share a chunk of rows of A, which
  // stays in cache while panels of B pass over it (a dynamic schedule measured no faster).
#pragma omp for schedule(static)
  for (int64_t task = 0; task < chunks * panels; ++task) {
    const int64_t i0 = task / panels * kRowChunk, i1 = std::min(M, i0 + kRowChunk);
    const int64_t j0 = task % panels * kCols, cols = std::min(kCols, N - j0);
    const __mmask16 m0 = lane_mask(cols), m1 = lane_mask(cols - 16);
    for (int64_t p0 = 0; p0 < Kp / 2; p0 += kPairBlock) {
      const int64_t pairs = std::min(kPairBlock, Kp / 2 - p0);
      const bool acc = accumulate || p0 > 0;
      const uint16_t *a = A + p0 * a_ps, *b = B + (p0 * Np + j0) * 2;
      int64_t i = i0;
      for (; i + kRows <= i1; i += kRows)
        micro_kernel<kRows>(C + i * ldc + j0, ldc, a + i * a_rs, a_rs, a_ps, pairs, b, Np, m0, m1, acc);
      for (; i < i1; ++i) micro_kernel<1>(C + i * ldc + j0, ldc, a + i * a_rs, a_rs, a_ps, pairs, b, Np, m0, m1, acc);
    }
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
      micro_kernel<kRows>(C + i * ldc + j0, ldc, A + i * lda, lda, 2, pairs, B + j0 * 2, ldb, m0, m1, accumulate);
    for (; i < M; ++i)
      micro_kernel<1>(C + i * ldc + j0, ldc, A + i * lda, lda, 2, pairs, B + j0 * 2, ldb, m0, m1, accumulate);
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
    run_blocks(C, ldc, A, a_cs == 1 ? Kp : 2, a_cs == 1 ? 2 : 2 * M, B, M, N, Kp, Np, accumulate);
  }
}

}  // namespace moe::ops
