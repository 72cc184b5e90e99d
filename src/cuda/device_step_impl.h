// Internals of the device step (src/cuda/device_step.cpp, device_step_ep.cpp): DeviceModel's
// forward and backward for one compute type T (float or bf16).
#pragma once
#include <cuda_bf16.h>

#include <limits>
#include <utility>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/combine.cuh"
#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/expert_layout.cuh"
#include "kernels/cuda/flash_attention.cuh"
#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/permute.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/router.cuh"
#include "kernels/cuda/router_grad.cuh"
#include "kernels/cuda/routing.cuh"
#include "kernels/cuda/softmax_ce.cuh"
#include "moe/expert_padding.h"
#include "src/comm/communicator.h"
#include "src/cuda/device_model_impl.h"

namespace moe::gpu::step {

using namespace moe::cuda;
using bf16 = __nv_bfloat16;

// Grows a buffer that holds a varying number of rows (expert parallelism: the rows received).
template <typename A>
void ensure_size(A& a, int64_t n) {
  if (a.size() < n) a.resize(n);
}

template <typename T>
class StepImpl final : public DeviceModel::Impl {
  static constexpr bool kF32 = std::is_same_v<T, float>;

 public:
  StepImpl(const Config& cfg, int64_t batch, cudaStream_t stream, comm::Communicator* ep_group);
  DeviceLosses forward(const int32_t* tokens, const SumReducer& reduce_sum) override;
  void backward(double global_tokens) override;
  void refresh_compute_copy() override {
    if constexpr (!kF32) convert(pc_.get(), params.get(), params.size(), s);
  }
  bf16* compute_copy() override {
    if constexpr (kF32) return nullptr;
    else return pc_.get();
  }
  int64_t activation_bytes() const override { return act_bytes_; }

 private:
  // Compute-type views of a master / gradient view (same offsets).
  T* pc(const float* master) {
    if constexpr (kF32) return const_cast<float*>(master);
    else return pc_.get() + (master - params.get());
  }
  T* gc(const float* grad) {
    if constexpr (kF32) return const_cast<float*>(grad);
    else return gc_.get() + (grad - grads.get());
  }
  // An fp32 buffer seen as T (fp32: the same buffer; bf16: `staging`, rounded from it).
  T* as_t(float* x, DeviceArray<T>& staging, int64_t n) {
    if constexpr (kF32) return x;
    else {
      convert(staging.get(), x, n, s);
      return staging.get();
    }
  }

  // The residual stream lives in the blocks' saved inputs: a block reads its input x and writes
  // its output (x + its branch) into the next block's saved input (the last into xf_), so the
  // inputs the backward needs are kept without copies. Under parallel.recompute block only those
  // inputs are kept per layer (attn_[i].x_in); the rest of a layer's activations live in one
  // workspace (wa_, wf_) that the backward refills by running the layer's forward again.
  void attention_forward_block(AttnActs<T>& a, const float* x, float* out, const BlockParams& p);
  void ffn_forward_block(int64_t i, FfnActs<T>& f, float* out, const BlockParams& p, const SumReducer& reduce_sum,
                         DeviceLosses& losses);
  void moe_forward(int64_t i, FfnActs<T>& f, float* out, const BlockParams& p, const SumReducer& reduce_sum,
                   DeviceLosses& losses);
  void routing_statistics(int64_t i, FfnActs<T>& f, const std::vector<double>& sums, const BlockParams& p,
                          const SumReducer& reduce_sum, DeviceLosses& losses);
  // Expert parallelism (ep != null): the experts' part of the MoE forward with the token rows
  // exchanged over the ep group, and its backward from d(ys) to d(xn) (into dxn32_).
  void ep_experts_forward(FfnActs<T>& f, const BlockParams& p);
  void ep_experts_backward(FfnActs<T>& f, const BlockParams& p, const BlockParams& g);
  // The local expert layout of the rows this rank receives, from the counts per (peer, local expert).
  void ep_layout(FfnActs<T>& f, const std::vector<int64_t>& recv_counts);
  // Sends [rows, D] blocks of T: send_rows[r] rows to peer r, recv_rows[r] from it.
  void ep_exchange(const T* send, const std::vector<int64_t>& send_rows, T* recv, const std::vector<int64_t>& recv_rows);
  // out = x + inp W^T (inp [N, I], W [D, I]): a block's output from its saved input. fp32 adds in
  // the GEMM (beta 1) onto a copy of x; bf16 stages the product and adds it out of place.
  void project_residual(float* out, const float* x, const T* inp, const T* w, int64_t I) {
    const int64_t N = d.N, D = d.D;
    if constexpr (kF32) {
      MOE_CUDA_CHECK(cudaMemcpyAsync(out, x, sizeof(float) * N * D, cudaMemcpyDeviceToDevice, s));
      matmul_forward(out, inp, w, N, I, D, true, s);
    } else {
      matmul_forward(stage_.get(), inp, w, N, I, D, false, s);
      residual_add(out, x, stage_.get(), N * D, s);
    }
  }
  // dx += the norm's input gradient for an output gradient in T (bf16: read as fp32, exact).
  void norm_backward(float* dweight, const T* dxn, const float* x_in, const float* weight, const float* rstd) {
    rmsnorm_backward(dx_.get(), dweight, dxn, x_in, weight, rstd, d.N, d.D, s);
  }
  // The expert GEMMs over the layer's row layout: blocked (uniform batched calls) or compact (grouped).
  void expert_forward(T* out, const T* in, const T* w, const FfnActs<T>& f, int64_t I, int64_t O) {
    if (f.blocks.block) blocked_matmul_forward(out, in, w, f.blocks.start.data(), f.experts, f.blocks.block, I, O, s);
    else grouped_matmul_forward(out, in, w, f.offs.data(), f.experts, I, O, s);
  }
  // dw: the compute-type gradient of the weights (added to the fp32 one at the end of backward);
  // dw32: the fp32 one, where experts with several blocks sum them (no rounding per block). The
  // blocked GEMMs overwrite din unless `accumulate` (the grouped one always adds: zero din first).
  void expert_backward(T* din, T* dw, float* dw32, const T* dout, const T* in, const T* w, const FfnActs<T>& f,
                       int64_t I, int64_t O, bool accumulate) {
    const ExpertBlocks& b = f.blocks;
    const int64_t E = f.experts;
    if (!b.block) grouped_matmul_backward(din, dw, dout, in, w, f.offs.data(), E, I, O, s);
    else if (b.max_blocks == 1)
      blocked_matmul_backward(din, dw, nullptr, dout, in, w, b.start.data(), E, b.block, I, O, s, accumulate);
    else blocked_matmul_backward(din, nullptr, dw32, dout, in, w, b.start.data(), E, b.block, I, O, s, accumulate);
  }
  // The SwiGLU experts' backward over the layer's rows: d(ye) in dxe_ in, d(xe) in dxe_ out (d(ye)
  // is consumed before d(xe) is written); the blocked GEMMs and SwiGLU overwrite, the grouped GEMM
  // accumulates into zeroed buffers.
  void experts_backward(const FfnActs<T>& f, const BlockParams& p, const BlockParams& g) {
    const int64_t R = f.used_rows, D = d.D, Fe = d.Fe;
    const bool blocked = f.blocks.block > 0;
    if (!blocked) dact_.zero(s, R * Fe);
    expert_backward(dact_.get(), gc(g.experts_w2), g.experts_w2, dxe_.get(), f.act.get(), pc(p.experts_w2), f, Fe, D,
                    false);
    swiglu_backward(dh1_.get(), dh3_.get(), dact_.get(), f.h1.get(), f.h3.get(), R * Fe, s, /*accumulate=*/false);
    if (!blocked) dxe_.zero(s, R * D);
    expert_backward(dxe_.get(), gc(g.experts_w1), g.experts_w1, dh1_.get(), f.xe.get(), pc(p.experts_w1), f, D, Fe,
                    false);
    expert_backward(dxe_.get(), gc(g.experts_w3), g.experts_w3, dh3_.get(), f.xe.get(), pc(p.experts_w3), f, D, Fe,
                    true);
  }
  void attention_backward_block(AttnActs<T>& a, const float* x, const BlockParams& p, const BlockParams& g);
  // Layer i's activations for its backward: its own, or the workspace refilled by its forward.
  AttnActs<T>& attn_acts(int64_t i) { return recompute_ ? wa_ : attn_[size_t(i)]; }
  FfnActs<T>& ffn_acts(int64_t i) { return recompute_ ? wf_ : ffn_[size_t(i)]; }
  void recompute_forward(int64_t i);
  // Phase marks, but none while recomputing (that time is the "recompute" phase).
  void mark(const char* name) {
    if (!recomputing_) marks.mark(name, s);
  }
  void ffn_backward_block(int64_t i, FfnActs<T>& f, const BlockParams& p, const BlockParams& g);

  ModelParams P_, G_;
  DeviceArray<T> pc_, gc_;  // bf16 compute copy of the weights and bf16 weight gradients (bf16 only)
  std::vector<AttnActs<T>> attn_;
  std::vector<FfnActs<T>> ffn_;  // under recompute: only the host routing state (aux_coef, global_tokens)
  bool recompute_ = false, recomputing_ = false;
  AttnActs<T> wa_;  // the recompute workspace (no x_in: the layers keep theirs)
  FfnActs<T> wf_;
  DeviceArray<float> recompute_out_;  // the re-run layer's output (the next layer's input is kept)
  // Expert parallelism scratch: rows in compact order to send, rows received, the counts exchange.
  DeviceArray<T> ep_send_, ep_recv_;
  DeviceArray<int64_t> ep_counts_;
  // layout_*: the blocked layout's slots and rows before they swap places with a layer's (scratch)
  DeviceArray<int32_t> inputs_, targets_, layout_slots_, layout_rows_;
  DeviceArray<int64_t> starts_;  // the blocked layout's expert start rows (scratch, E + 1)
  DeviceArray<float> xf_, rstdf_, lse_, dlosses_;  // xf_: the last block's output (the head's input)
  DeviceArray<T> xnf_t_, logits_;
  DeviceArray<double> loss_sum_;
  // backward / staging scratch, shared by the blocks
  DeviceArray<float> dx_, dxn32_, dws_, dw_slot_, dlogits_r_, aux_coef_;
  DeviceArray<T> stage_, dx_t_, dxn_t_, dy_, dq_, dk_, dv_, dxe_, dh1_, dh3_, dact_, dlogits_;
  std::vector<int64_t> moe_index_;  // per layer: index among the MoE layers, -1 for dense
  int64_t expert_rows_ = 0;  // rows of the expert buffers (moe/expert_padding.h)
  bool flash_ = false;  // bf16 attention through the tiled kernel (kernels/cuda/flash_attention.cuh)
  // The flash kernels' block shape: timed on this model's attention at construction, the faster kept.
  FlashBlock flash_block_ = FlashBlock::k64;
  void choose_flash_block();
  int64_t act_bytes_ = 0;
};

}  // namespace moe::gpu::step
