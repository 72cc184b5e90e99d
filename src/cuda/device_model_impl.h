// Internals of DeviceModel (src/cuda/device_model.h): activations per block and the per-precision
// step. T is the compute type of GEMM operands and saved activations (float or bf16).
#pragma once
#include <cuda_bf16.h>

#include <type_traits>
#include <vector>

#include "moe/expert_padding.h"
#include "src/cuda/device_model.h"
#include "src/cuda/phase_marks.h"
#include "src/model/dims.h"

namespace moe::gpu {

template <typename T>
struct AttnActs {
  DeviceArray<float> x_in, rstd;
  DeviceArray<T> xn, q, k, v, att, y;  // att: probabilities [B, H, T, T] (cuBLAS attention only)
  DeviceArray<float> lse;              // row logsumexp [B, H, T] (flash attention only)
};

template <typename T>
struct FfnActs {
  DeviceArray<float> x_in, rstd, xn32;  // xn32: fp32 normed input (router input; the GEMM input in fp32)
  DeviceArray<T> xn_t;                   // bf16 copy of xn32 (unused in fp32)
  DeviceArray<T> h1, h3, act;            // SwiGLU hidden (experts: permuted rows)
  // MoE routing
  DeviceArray<float> logits, probs, weights, lse, sorted_weights;
  DeviceArray<int32_t> idx, slots, rows;  // slots, rows: in expert order, -1 on padding rows
  DeviceArray<int32_t> slot_row;         // [N K] the layout row of each slot (the inverse of slots)
  DeviceArray<int64_t> offsets;
  DeviceArray<double> sums;              // E prob sums, lse^2 sum, entropy sum
  DeviceArray<T> xe, ye;                 // permuted inputs and expert outputs
  std::vector<int64_t> offs;             // host: the expert layout's compact row offsets (experts + 1)
  ExpertBlocks blocks;                   // the blocked layout (moe/expert_padding.h); block 0 = compact
  int64_t experts = 0;                   // experts of the layout: E, or this rank's E / ep under EP
  int64_t used_rows = 0;                 // rows of xe/ye/h1/... in use: blocks.rows(), or offs.back() when compact
  // Expert parallelism: this rank's routed rows stay in compact (global expert) order (slots,
  // rows, slot_row, sorted_weights over M rows); the rows of ep peer r's experts go to r, and the
  // expert outputs come back into ys. xe/h1/h3/act/ye hold the rows this rank's experts received.
  DeviceArray<T> ys;                     // [M, D] the expert outputs of this rank's rows, compact order
  DeviceArray<int32_t> local_src;        // [used_rows] received row of each local layout row (-1: padding)
  DeviceArray<int32_t> recv_local;       // [received] local layout row of each received row
  std::vector<int64_t> send_rows, recv_rows;  // host: rows to / from each ep peer
  int64_t received = 0;
  std::vector<float> aux_coef;           // d aux / d p[n, e] per expert (global statistics)
  double global_tokens = 0;              // tokens the statistics were summed over
  T* xn() { return std::is_same_v<T, float> ? reinterpret_cast<T*>(xn32.get()) : xn_t.get(); }
};

class DeviceModel::Impl {
 public:
  virtual ~Impl() = default;
  virtual DeviceLosses forward(const int32_t* tokens, const SumReducer& reduce_sum) = 0;
  virtual void backward(double global_tokens) = 0;
  virtual void refresh_compute_copy() = 0;
  virtual __nv_bfloat16* compute_copy() = 0;  // null in fp32
  virtual int64_t activation_bytes() const = 0;

  Config c;
  Dims d;
  comm::Communicator* ep = nullptr;  // expert parallelism over device memory (null: all experts here)
  std::vector<int64_t> ep_sent;      // DeviceModel::ep_sent_bytes()
  cudaStream_t s = nullptr;
  ParamTable table;
  DeviceArray<float> params, grads;
  DeviceArray<float> losses;
  std::vector<LayerLoadStats> stats;
  DeviceModel::ExpertRowUse row_use;  // of the last forward
  std::string attention_kernel;       // DeviceModel::attention_kernel()
  PhaseMarks marks;
};

// Makes the Impl of the config's precision (fp32 or bf16).
std::unique_ptr<DeviceModel::Impl> make_device_impl(const Config& c, int64_t batch, cudaStream_t stream,
                                                   comm::Communicator* ep);

}  // namespace moe::gpu
