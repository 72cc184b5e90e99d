// The fp32 GEMM (kernels/cpu/gemm_f32.h), built as the bf16 one (gemm_bf16.cpp). A is packed into
// micro-panels of 12 rows, [Mp/12][K][12] (zero rows past M), so that the 12 values of one k are
// adjacent broadcasts; B into panels of 32 columns, [Np/32][K][32] (zero columns past N), so that
// the micro-kernel reads its two zmm of B per k from one contiguous stream (a [K][Np] layout has
// rows Np * 4 bytes apart: with Np = 2048 every row of a panel falls in the same L1 set).
// The micro-kernel keeps a 12 x 32 block of C in 24 zmm registers (+ 2 for B, 1 broadcast):
// 24 independent FMA chains cover the FMA latency on two pipes, 14 loads per 24 FMAs.
// k runs in blocks of 256: a block of a B panel (32 KB) stays in L1 while the micro-panels of a
// chunk of 96 rows (96 KB of A per block, in L2) pass over it.
#include "kernels/cpu/gemm_f32.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "src/core/error.h"

namespace moe::ops {

namespace {

bool g_enabled = true;

#define MOE_F32_TARGET __attribute__((target("avx512f")))

constexpr int64_t kRows = 12, kCols = 32, kRowChunk = 8 * kRows, kBlockK = 256;
constexpr int64_t kParallelWork = int64_t(1) << 20;  // multiply-adds below which one thread is faster

bool cpu_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

// The pack and block loops run inside the one parallel region of gemm_f32 (orphaned worksharing
// loops): a GEMM synchronises its threads twice.

// A[m][k] = a[m*rs + k*cs] -> [Mp/12][K][12].
void pack_a(float* A, const float* a, int64_t M, int64_t K, int64_t rs, int64_t cs) {
  const int64_t panels = (M + kRows - 1) / kRows;
#pragma omp for schedule(static) nowait
  for (int64_t ip = 0; ip < panels; ++ip) {
    float* out = A + ip * K * kRows;
    if (cs == 1) {  // rows contiguous along k: read each row once, write it with stride 12
      for (int64_t r = 0; r < kRows; ++r) {
        const int64_t m = ip * kRows + r;
        if (m < M)
          for (int64_t k = 0; k < K; ++k) out[k * kRows + r] = a[m * rs + k];
        else
          for (int64_t k = 0; k < K; ++k) out[k * kRows + r] = 0.0f;
      }
    } else {  // columns contiguous along m: 12 adjacent values per k
      const int64_t rows = std::min(kRows, M - ip * kRows);
      for (int64_t k = 0; k < K; ++k) {
        const float* src = a + ip * kRows * rs + k * cs;
        for (int64_t r = 0; r < kRows; ++r) out[k * kRows + r] = r < rows ? src[r * rs] : 0.0f;
      }
    }
  }
}

// B[n][k] = b[n*rs + k*cs] -> [Np/32][K][32].
void pack_b(float* B, const float* b, int64_t N, int64_t K, int64_t rs, int64_t cs) {
  const int64_t panels = (N + kCols - 1) / kCols;
#pragma omp for schedule(static)
  for (int64_t jp = 0; jp < panels; ++jp) {
    float* out = B + jp * K * kCols;
    const int64_t cols = std::min(kCols, N - jp * kCols);
    if (cs == 1) {  // rows of B^T contiguous along k (a weight [out][in] in the forward product)
      for (int64_t c = 0; c < kCols; ++c) {
        const float* src = b + (jp * kCols + c) * rs;
        if (c < cols)
          for (int64_t k = 0; k < K; ++k) out[k * kCols + c] = src[k];
        else
          for (int64_t k = 0; k < K; ++k) out[k * kCols + c] = 0.0f;
      }
    } else {  // contiguous along n: 32 adjacent values per k
      for (int64_t k = 0; k < K; ++k) {
        const float* src = b + jp * kCols * rs + k * cs;
        for (int64_t c = 0; c < kCols; ++c) out[k * kCols + c] = c < cols ? src[c * rs] : 0.0f;
      }
    }
  }
}

// C[rows <= 12, 32 masked] (+)= A[kc][12] . B[kc][32].
MOE_F32_TARGET void micro_kernel(float* C, int64_t ldc, const float* A, const float* B, int64_t kc, int64_t rows,
                                 __mmask16 m0, __mmask16 m1, bool accumulate) {
  __m512 c0[kRows], c1[kRows];
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(B + k * kCols), b1 = _mm512_loadu_ps(B + k * kCols + 16);
#pragma GCC unroll 12
    for (int r = 0; r < kRows; ++r) {
      const __m512 a = _mm512_set1_ps(A[k * kRows + r]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    float* c = C + r * ldc;
    if (accumulate) {
      c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), c0[r]);
      c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}

__mmask16 lane_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

MOE_F32_TARGET void run_blocks(float* C, int64_t ldc, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
                               bool accumulate) {
  const int64_t panels = (N + kCols - 1) / kCols, chunks = (M + kRowChunk - 1) / kRowChunk;
  // Chunk-major tasks: a thread's consecutive tasks share a chunk of rows of A.
#pragma omp for schedule(static)
  for (int64_t task = 0; task < chunks * panels; ++task) {
    const int64_t i0 = task / panels * kRowChunk, i1 = std::min(M, i0 + kRowChunk);
    const int64_t j0 = task % panels * kCols, cols = std::min(kCols, N - j0);
    const __mmask16 m0 = lane_mask(cols), m1 = lane_mask(cols - 16);
    const float* b = B + j0 * K;  // panel j0 / 32 starts at (j0 / 32) * K * 32
    for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
      const int64_t kc = std::min(kBlockK, K - k0);
      const bool acc = accumulate || k0 > 0;
      for (int64_t i = i0; i < i1; i += kRows)
        micro_kernel(C + i * ldc + j0, ldc, A + i * K + k0 * kRows, b + k0 * kCols, kc, std::min(kRows, i1 - i),
                     m0, m1, acc);
    }
  }
}

// Packing scratch per calling thread, kept at the largest GEMM it ran (as gemm_bf16's): M x K + N x K
// floats, e.g. 12 MB for a 1024 x 512 weight gradient over 2048 tokens.
thread_local std::vector<float> t_a, t_b;

}  // namespace

bool gemm_f32_available() { return g_enabled && cpu_avx512f(); }
void set_gemm_f32_enabled(bool on) { g_enabled = on; }

void gemm_f32(float* C, int64_t ldc, const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t b_rs,
              int64_t b_cs, int64_t M, int64_t N, int64_t K, bool accumulate) {
  MOE_CHECK(cpu_avx512f(), "gemm_f32 needs AVX-512F");
  MOE_CHECK(a_rs == 1 || a_cs == 1, "gemm_f32: operand A needs a unit stride");
  MOE_CHECK(b_rs == 1 || b_cs == 1, "gemm_f32: operand B needs a unit stride");
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty product: C keeps its values or becomes zero
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  const int64_t Mp = (M + kRows - 1) / kRows * kRows, Np = (N + kCols - 1) / kCols * kCols;
  t_a.resize(size_t(Mp * K));
  t_b.resize(size_t(Np * K));
  float *A = t_a.data(), *B = t_b.data();
#pragma omp parallel if (M * N * K >= kParallelWork)
  {
    pack_a(A, a, M, K, a_rs, a_cs);
    pack_b(B, b, N, K, b_rs, b_cs);  // its loop's barrier also waits for pack_a
    run_blocks(C, ldc, A, B, M, N, K, accumulate);
  }
}

}  // namespace moe::ops
