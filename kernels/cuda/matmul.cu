// Dense GEMMs (cublasGemmEx), the grouped expert GEMM (one cublasGemmGroupedBatchedEx call for
// all non-empty experts) and the padded one (one cublasGemmStridedBatchedEx call). The grouped
// call's pointer arrays must live on the device; a small kernel writes them from base pointers and
// per-expert offsets passed by value, so nothing is copied from pageable memory.
#include <string>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_rm.cuh"
#include "kernels/cuda/matmul.cuh"

namespace moe::cuda {

namespace {

// ---- kernels ----------------------------------------------------------------------------
constexpr int kChunk = 128;  // groups per pointer-filling launch (3 KB of kernel parameters)

struct PtrChunk {
  int count;
  int64_t a_off[kChunk], b_off[kChunk], c_off[kChunk];  // element offsets from the base pointers
};

template <typename T>
__global__ void fill_group_ptrs(const T** A, const T** B, T** C, const T* a_base, const T* b_base, T* c_base,
                                PtrChunk chunk) {
  const int g = threadIdx.x;
  if (g >= chunk.count) return;
  A[g] = a_base + chunk.a_off[g];
  B[g] = b_base + chunk.b_off[g];
  C[g] = c_base + chunk.c_off[g];
}

// ---- launcher ---------------------------------------------------------------------------
// One row-major problem per non-empty expert, all of the same orientation; offsets per expert
// are computed by `offs(e, r0)` as {a, b, c} element offsets and `dims(rows)` as {M, Ncol, K}.
struct GroupProblem {
  int64_t M, Ncol, K, a, b, c;
};

template <typename T>
void grouped_gemm_rm(cublasHandle_t h, cudaStream_t stream, bool trans_a, bool trans_b,
                     const std::vector<GroupProblem>& probs, const T* A, int64_t lda, const T* B, int64_t ldb,
                     float beta, T* C, int64_t ldc) {
  const int G = static_cast<int>(probs.size());
  if (G == 0) return;
  void* raw = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&raw, sizeof(void*) * 3 * G, stream));
  T** base = static_cast<T**>(raw);
  const T** dA = const_cast<const T**>(base);
  const T** dB = dA + G;
  T** dC = base + 2 * G;
  for (int g0 = 0; g0 < G; g0 += kChunk) {
    PtrChunk chunk{};
    chunk.count = G - g0 < kChunk ? G - g0 : kChunk;
    for (int g = 0; g < chunk.count; ++g) {
      // Swapped for column-major cuBLAS: its "A" is our B and its "B" is our A.
      chunk.a_off[g] = probs[g0 + g].b;
      chunk.b_off[g] = probs[g0 + g].a;
      chunk.c_off[g] = probs[g0 + g].c;
    }
    fill_group_ptrs<T><<<1, kChunk, 0, stream>>>(dA + g0, dB + g0, dC + g0, B, A, C, chunk);
    MOE_CUDA_CHECK_LAUNCH();
  }
  std::vector<cublasOperation_t> ta(G, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N), tb(G, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
  std::vector<int> m(G), n(G), k(G), lda_v(G, static_cast<int>(ldb)), ldb_v(G, static_cast<int>(lda)),
      ldc_v(G, static_cast<int>(ldc)), size(G, 1);
  std::vector<float> alpha(G, 1.0f), betas(G, beta);
  for (int g = 0; g < G; ++g) {
    m[g] = static_cast<int>(probs[g].Ncol);
    n[g] = static_cast<int>(probs[g].M);
    k[g] = static_cast<int>(probs[g].K);
  }
  const cudaDataType_t t = CudaType<T>::value;
  MOE_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(h, ta.data(), tb.data(), m.data(), n.data(), k.data(), alpha.data(),
                                              reinterpret_cast<const void* const*>(dA), t, lda_v.data(),
                                              reinterpret_cast<const void* const*>(dB), t, ldb_v.data(),
                                              betas.data(), reinterpret_cast<void* const*>(dC), t, ldc_v.data(), G,
                                              size.data(), CUBLAS_COMPUTE_32F));
  MOE_CUDA_CHECK(cudaFreeAsync(raw, stream));
}

void check_offsets(const int64_t* offsets, int64_t E) {
  MOE_CUDA_REQUIRE(offsets[0] == 0, "grouped_matmul: offsets[0] must be 0, got " + std::to_string(offsets[0]));
  for (int64_t e = 0; e < E; ++e)
    MOE_CUDA_REQUIRE(offsets[e + 1] >= offsets[e],
                     "grouped_matmul: offsets must be non-decreasing at expert " + std::to_string(e));
  MOE_CUDA_REQUIRE(offsets[E] <= INT32_MAX, "grouped_matmul: more than 2^31 rows");
}

// ---- public entries (templated bodies) --------------------------------------------------
template <typename T>
void matmul_fwd(T* out, const T* inp, const T* weight, int64_t N, int64_t I, int64_t O, bool accumulate,
                cudaStream_t stream) {
  cublasHandle_t h = blas_context(stream).blas;
  gemm_rm<T>(h, false, true, N, O, I, 1.0f, inp, I, weight, I, accumulate ? 1.0f : 0.0f, out, O);
}

template <typename T>
void matmul_bwd(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, int64_t N, int64_t I, int64_t O,
                cudaStream_t stream) {
  cublasHandle_t h = blas_context(stream).blas;
  if (dinp) gemm_rm<T>(h, false, false, N, I, O, 1.0f, dout, O, weight, I, 1.0f, dinp, I);
  if (dweight) gemm_rm<T>(h, true, false, O, I, N, 1.0f, dout, O, inp, I, 1.0f, dweight, I);
}

template <typename T>
void grouped_fwd(T* out, const T* inp, const T* weights, const int64_t* offsets, int64_t E, int64_t I, int64_t O,
                 cudaStream_t stream) {
  check_offsets(offsets, E);
  std::vector<GroupProblem> probs;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - r0;
    if (rows > 0) probs.push_back({rows, O, I, r0 * I, e * O * I, r0 * O});
  }
  grouped_gemm_rm<T>(blas_context(stream).blas, stream, false, true, probs, inp, I, weights, I, 0.0f, out, O);
}

template <typename T>
void grouped_bwd(T* dinp, T* dweights, const T* dout, const T* inp, const T* weights, const int64_t* offsets,
                 int64_t E, int64_t I, int64_t O, cudaStream_t stream) {
  check_offsets(offsets, E);
  cublasHandle_t h = blas_context(stream).blas;
  std::vector<GroupProblem> dx, dw;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - r0;
    if (rows == 0) continue;
    dx.push_back({rows, I, O, r0 * O, e * O * I, r0 * I});    // dinp_e += dout_e @ W_e
    dw.push_back({O, I, rows, r0 * O, r0 * I, e * O * I});    // dW_e += dout_e^T @ inp_e
  }
  if (dinp) grouped_gemm_rm<T>(h, stream, false, false, dx, dout, O, weights, I, 1.0f, dinp, I);
  if (dweights) grouped_gemm_rm<T>(h, stream, true, false, dw, dout, O, inp, I, 1.0f, dweights, I);
}

template <typename T>
void padded_fwd(T* out, const T* inp, const T* weights, int64_t E, int64_t cap, int64_t I, int64_t O,
                cudaStream_t stream) {
  MOE_CUDA_REQUIRE(E >= 0 && cap >= 0, "padded_matmul: E and cap must be >= 0");
  // out_e[cap, O] = inp_e[cap, I] W_e^T
  gemm_rm_strided<T>(blas_context(stream).blas, false, true, cap, O, I, 1.0f, inp, I, cap * I, weights, I, O * I, 0.0f,
                     out, O, cap * O, E);
}

template <typename T>
void padded_bwd(T* dinp, T* dweights, const T* dout, const T* inp, const T* weights, int64_t E, int64_t cap,
                int64_t I, int64_t O, cudaStream_t stream) {
  MOE_CUDA_REQUIRE(E >= 0 && cap >= 0, "padded_matmul: E and cap must be >= 0");
  cublasHandle_t h = blas_context(stream).blas;
  // dinp_e += dout_e W_e; dW_e += dout_e^T inp_e
  if (dinp) gemm_rm_strided<T>(h, false, false, cap, I, O, 1.0f, dout, O, cap * O, weights, I, O * I, 1.0f, dinp, I,
                               cap * I, E);
  if (dweights) gemm_rm_strided<T>(h, true, false, O, I, cap, 1.0f, dout, O, cap * O, inp, I, cap * I, 1.0f, dweights,
                                   I, O * I, E);
}

}  // namespace

void padded_matmul_forward(float* out, const float* inp, const float* weights, int64_t E, int64_t cap, int64_t I,
                           int64_t O, cudaStream_t stream) {
  padded_fwd(out, inp, weights, E, cap, I, O, stream);
}
void padded_matmul_forward(bf16* out, const bf16* inp, const bf16* weights, int64_t E, int64_t cap, int64_t I,
                           int64_t O, cudaStream_t stream) {
  padded_fwd(out, inp, weights, E, cap, I, O, stream);
}
void padded_matmul_backward(float* dinp, float* dweights, const float* dout, const float* inp, const float* weights,
                            int64_t E, int64_t cap, int64_t I, int64_t O, cudaStream_t stream) {
  padded_bwd(dinp, dweights, dout, inp, weights, E, cap, I, O, stream);
}
void padded_matmul_backward(bf16* dinp, bf16* dweights, const bf16* dout, const bf16* inp, const bf16* weights,
                            int64_t E, int64_t cap, int64_t I, int64_t O, cudaStream_t stream) {
  padded_bwd(dinp, dweights, dout, inp, weights, E, cap, I, O, stream);
}

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t I, int64_t O,
                    bool accumulate, cudaStream_t stream) {
  matmul_fwd(out, inp, weight, N, I, O, accumulate, stream);
}
void matmul_forward(bf16* out, const bf16* inp, const bf16* weight, int64_t N, int64_t I, int64_t O,
                    bool accumulate, cudaStream_t stream) {
  matmul_fwd(out, inp, weight, N, I, O, accumulate, stream);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t I, int64_t O, cudaStream_t stream) {
  matmul_bwd(dinp, dweight, dout, inp, weight, N, I, O, stream);
}
void matmul_backward(bf16* dinp, bf16* dweight, const bf16* dout, const bf16* inp, const bf16* weight, int64_t N,
                     int64_t I, int64_t O, cudaStream_t stream) {
  matmul_bwd(dinp, dweight, dout, inp, weight, N, I, O, stream);
}

void grouped_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* offsets,
                            int64_t E, int64_t I, int64_t O, cudaStream_t stream) {
  grouped_fwd(out, inp, weights, offsets, E, I, O, stream);
}
void grouped_matmul_forward(bf16* out, const bf16* inp, const bf16* weights, const int64_t* offsets, int64_t E,
                            int64_t I, int64_t O, cudaStream_t stream) {
  grouped_fwd(out, inp, weights, offsets, E, I, O, stream);
}

void grouped_matmul_backward(float* dinp, float* dweights, const float* dout, const float* inp,
                             const float* weights, const int64_t* offsets, int64_t E, int64_t I, int64_t O,
                             cudaStream_t stream) {
  grouped_bwd(dinp, dweights, dout, inp, weights, offsets, E, I, O, stream);
}
void grouped_matmul_backward(bf16* dinp, bf16* dweights, const bf16* dout, const bf16* inp, const bf16* weights,
                             const int64_t* offsets, int64_t E, int64_t I, int64_t O, cudaStream_t stream) {
  grouped_bwd(dinp, dweights, dout, inp, weights, offsets, E, I, O, stream);
}

}  // namespace moe::cuda
