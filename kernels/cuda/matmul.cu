// Dense GEMMs (cublasGemmEx), the grouped expert GEMM (one cublasGemmGroupedBatchedEx call for
// all non-empty experts) and the blocked one (cublasGemmBatchedEx / StridedBatchedEx). Pointer
// arrays must live on the device; a small kernel writes them from base pointers and offsets passed
// by value, so nothing is copied from pageable memory.
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
  int64_t a_off[kChunk], b_off[kChunk], c_off[kChunk];  // byte offsets from the base pointers
};

__global__ void fill_group_ptrs(const char** A, const char** B, char** C, const char* a_base, const char* b_base,
                                char* c_base, PtrChunk chunk) {
  const int g = threadIdx.x;
  if (g >= chunk.count) return;
  A[g] = a_base + chunk.a_off[g];
  B[g] = b_base + chunk.b_off[g];
  C[g] = c_base + chunk.c_off[g];
}

// ---- launchers --------------------------------------------------------------------------
// One row-major problem per expert or block, all of the same orientation: {M, Ncol, K} and the
// element offsets {a, b, c} of its matrices from the base pointers.
struct GroupProblem {
  int64_t M, Ncol, K, a, b, c;
};

// Device arrays of A, B and C pointers (swapped for column-major cuBLAS: its "A" is our B) for
// the problems, written by a small kernel from offsets passed by value; freed by the caller.
template <typename TA, typename TC>
void** device_pointer_arrays(cudaStream_t stream, const std::vector<GroupProblem>& probs, const TA* A, const TA* B,
                             TC* C) {
  const int G = static_cast<int>(probs.size());
  void* raw = nullptr;
  MOE_CUDA_CHECK(cudaMallocAsync(&raw, sizeof(void*) * 3 * G, stream));
  char** base = static_cast<char**>(raw);
  for (int g0 = 0; g0 < G; g0 += kChunk) {
    PtrChunk chunk{};
    chunk.count = G - g0 < kChunk ? G - g0 : kChunk;
    for (int g = 0; g < chunk.count; ++g) {
      chunk.a_off[g] = probs[g0 + g].b * int64_t(sizeof(TA));
      chunk.b_off[g] = probs[g0 + g].a * int64_t(sizeof(TA));
      chunk.c_off[g] = probs[g0 + g].c * int64_t(sizeof(TC));
    }
    fill_group_ptrs<<<1, kChunk, 0, stream>>>(const_cast<const char**>(base) + g0, const_cast<const char**>(base) + G + g0,
                                              base + 2 * G + g0, reinterpret_cast<const char*>(B),
                                              reinterpret_cast<const char*>(A), reinterpret_cast<char*>(C), chunk);
    MOE_CUDA_CHECK_LAUNCH();
  }
  return reinterpret_cast<void**>(base);
}

template <typename T>
void grouped_gemm_rm(cublasHandle_t h, cudaStream_t stream, bool trans_a, bool trans_b,
                     const std::vector<GroupProblem>& probs, const T* A, int64_t lda, const T* B, int64_t ldb,
                     float beta, T* C, int64_t ldc) {
  const int G = static_cast<int>(probs.size());
  if (G == 0) return;
  void** ptrs = device_pointer_arrays(stream, probs, A, B, C);
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
                                              ptrs, t, lda_v.data(), ptrs + G, t, ldb_v.data(), betas.data(),
                                              ptrs + 2 * G, t, ldc_v.data(), G, size.data(), CUBLAS_COMPUTE_32F));
  MOE_CUDA_CHECK(cudaFreeAsync(ptrs, stream));
}

// Problems of one shape {M, Ncol, K} in one cublasGemmBatchedEx; C may be fp32 under bf16 inputs.
template <typename T, typename TC>
void batched_gemm_rm(cublasHandle_t h, cudaStream_t stream, bool trans_a, bool trans_b, int64_t M, int64_t Ncol,
                     int64_t K, const std::vector<GroupProblem>& probs, const T* A, int64_t lda, const T* B,
                     int64_t ldb, float beta, TC* C, int64_t ldc) {
  const int G = static_cast<int>(probs.size());
  if (G == 0 || M == 0 || Ncol == 0) return;
  void** ptrs = device_pointer_arrays(stream, probs, A, B, C);
  const float alpha = 1.0f;
  MOE_CUBLAS_CHECK(cublasGemmBatchedEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                       int(Ncol), int(M), int(K), &alpha, ptrs, CudaType<T>::value, int(ldb), ptrs + G,
                                       CudaType<T>::value, int(lda), &beta, ptrs + 2 * G, CudaType<TC>::value,
                                       int(ldc), G, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  MOE_CUDA_CHECK(cudaFreeAsync(ptrs, stream));
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
                cudaStream_t stream, bool accumulate_dinp) {
  cublasHandle_t h = blas_context(stream).blas;
  if (dinp) gemm_rm<T>(h, false, false, N, I, O, 1.0f, dout, O, weight, I, accumulate_dinp ? 1.0f : 0.0f, dinp, I);
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

void check_blocks(const int64_t* start, int64_t E, int64_t block) {
  MOE_CUDA_REQUIRE(block > 0 && start[0] == 0, "blocked_matmul: block must be > 0 and start[0] 0");
  for (int64_t e = 0; e < E; ++e)
    MOE_CUDA_REQUIRE(start[e + 1] >= start[e] && (start[e + 1] - start[e]) % block == 0,
                     "blocked_matmul: expert " + std::to_string(e) + " does not own whole blocks");
  MOE_CUDA_REQUIRE(start[E] <= INT32_MAX && block <= INT32_MAX, "blocked_matmul: more than 2^31 rows");
}

// Every expert owns exactly one block at e * block: the strided-batched form applies.
bool one_block_each(const int64_t* start, int64_t E, int64_t block) {
  for (int64_t e = 0; e <= E; ++e)
    if (start[e] != e * block) return false;
  return true;
}

// out_e (+)= in_e W_e^T (trans_w) or in_e W_e per expert on the blocked layout: `in` rows of K
// columns, `out` rows of Ncol, W_e [O, I] row-major; strided when every expert owns one block,
// else one batched call over all blocks.
template <typename T>
void blocked_rows_gemm(cublasHandle_t h, cudaStream_t stream, bool trans_w, int64_t Ncol, int64_t K, const T* in,
                       const T* weights, int64_t I, int64_t O, float beta, T* out, const int64_t* start, int64_t E,
                       int64_t block) {
  if (one_block_each(start, E, block)) {
    gemm_rm_strided<T>(h, false, trans_w, block, Ncol, K, 1.0f, in, K, block * K, weights, I, O * I, beta, out, Ncol,
                       block * Ncol, E);
    return;
  }
  std::vector<GroupProblem> probs;
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = start[e]; r < start[e + 1]; r += block) probs.push_back({block, Ncol, K, r * K, e * O * I, r * Ncol});
  batched_gemm_rm<T, T>(h, stream, false, trans_w, block, Ncol, K, probs, in, K, weights, I, beta, out, Ncol);
}

template <typename T>
void blocked_fwd(T* out, const T* inp, const T* weights, const int64_t* start, int64_t E, int64_t block, int64_t I,
                 int64_t O, cudaStream_t stream) {
  check_blocks(start, E, block);
  blocked_rows_gemm<T>(blas_context(stream).blas, stream, true, O, I, inp, weights, I, O, 0.0f, out, start, E, block);
}

// dW_e += dout_e^T inp_e, one call per block index j (the experts owning a block j), strided when
// every expert owns one block: the calls run in order on the stream, so each dW_e sums its blocks
// in a fixed order.
template <typename T, typename TW>
void blocked_dweights(TW* dweights, const T* dout, const T* inp, const int64_t* start, int64_t E, int64_t block,
                      int64_t I, int64_t O, cublasHandle_t h, cudaStream_t stream) {
  if (one_block_each(start, E, block)) {
    gemm_rm_strided<T, TW>(h, true, false, O, I, block, 1.0f, dout, O, block * O, inp, I, block * I, 1.0f, dweights,
                           I, O * I, E);
    return;
  }
  for (int64_t j = 0;; ++j) {
    std::vector<GroupProblem> probs;
    for (int64_t e = 0; e < E; ++e) {
      const int64_t r = start[e] + j * block;
      if (r < start[e + 1]) probs.push_back({O, I, block, r * O, r * I, e * O * I});
    }
    if (probs.empty()) break;
    batched_gemm_rm<T, TW>(h, stream, true, false, O, I, block, probs, dout, O, inp, I, 1.0f, dweights, I);
  }
}

template <typename T>
void blocked_bwd(T* dinp, T* dweights, float* dweights32, const T* dout, const T* inp, const T* weights,
                 const int64_t* start, int64_t E, int64_t block, int64_t I, int64_t O, cudaStream_t stream,
                 bool accumulate_dinp) {
  check_blocks(start, E, block);
  cublasHandle_t h = blas_context(stream).blas;
  if (dinp)  // dinp_e (+)= dout_e W_e
    blocked_rows_gemm<T>(h, stream, false, I, O, dout, weights, I, O, accumulate_dinp ? 1.0f : 0.0f, dinp, start, E,
                         block);
  if (dweights32) blocked_dweights<T, float>(dweights32, dout, inp, start, E, block, I, O, h, stream);
  else if (dweights) blocked_dweights<T, T>(dweights, dout, inp, start, E, block, I, O, h, stream);
}

}  // namespace

void blocked_matmul_forward(float* out, const float* inp, const float* weights, const int64_t* start, int64_t E,
                            int64_t block, int64_t I, int64_t O, cudaStream_t stream) {
  blocked_fwd(out, inp, weights, start, E, block, I, O, stream);
}
void blocked_matmul_forward(bf16* out, const bf16* inp, const bf16* weights, const int64_t* start, int64_t E,
                            int64_t block, int64_t I, int64_t O, cudaStream_t stream) {
  blocked_fwd(out, inp, weights, start, E, block, I, O, stream);
}
void blocked_matmul_backward(float* dinp, float* dweights, float* dweights32, const float* dout, const float* inp,
                             const float* weights, const int64_t* start, int64_t E, int64_t block, int64_t I,
                             int64_t O, cudaStream_t stream, bool accumulate_dinp) {
  blocked_bwd(dinp, dweights, dweights32, dout, inp, weights, start, E, block, I, O, stream, accumulate_dinp);
}
void blocked_matmul_backward(bf16* dinp, bf16* dweights, float* dweights32, const bf16* dout, const bf16* inp,
                             const bf16* weights, const int64_t* start, int64_t E, int64_t block, int64_t I, int64_t O,
                             cudaStream_t stream, bool accumulate_dinp) {
  blocked_bwd(dinp, dweights, dweights32, dout, inp, weights, start, E, block, I, O, stream, accumulate_dinp);
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
                     int64_t N, int64_t I, int64_t O, cudaStream_t stream, bool accumulate_dinp) {
  matmul_bwd(dinp, dweight, dout, inp, weight, N, I, O, stream, accumulate_dinp);
}
void matmul_backward(bf16* dinp, bf16* dweight, const bf16* dout, const bf16* inp, const bf16* weight, int64_t N,
                     int64_t I, int64_t O, cudaStream_t stream, bool accumulate_dinp) {
  matmul_bwd(dinp, dweight, dout, inp, weight, N, I, O, stream, accumulate_dinp);
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
