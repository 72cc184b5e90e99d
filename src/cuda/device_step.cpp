// DeviceModel's forward and backward for one compute type T (float or bf16). The order of
// operations follows src/model/transformer.cpp, attention.cpp, mlp.cpp and moe/moe_layer.cpp.
#include <cuda_bf16.h>

#include <cstdio>
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

namespace moe::gpu {

namespace {

using namespace moe::cuda;
using bf16 = __nv_bfloat16;

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

template <typename T>
StepImpl<T>::StepImpl(const Config& cfg, int64_t batch, cudaStream_t stream, comm::Communicator* ep_group) {
  c = cfg;
  d = make_dims(cfg, batch);
  s = stream;
  if (ep_group && ep_group->size() > 1) {
    ep = ep_group;
    MOE_CUDA_REQUIRE(d.E % ep->size() == 0, "expert parallelism: " + std::to_string(d.E) +
                                                " experts do not divide over " + std::to_string(ep->size()) + " ranks");
  }
  table = ep ? build_param_table(cfg, ExpertShard{ep->size(), ep->rank()}) : build_param_table(cfg);
  params.resize(table.total());
  grads.resize(table.total());
  params.zero(s);
  grads.zero(s);
  P_ = bind_params(cfg, table, params.get());
  G_ = bind_params(cfg, table, grads.get());
  if constexpr (!kF32) {
    pc_.resize(table.total());
    gc_.resize(table.total());
  }
  const int64_t N = d.N, D = d.D, qd = d.H * d.hd, kvd = d.KV * d.hd, M = N * d.K, E = d.E;
  expert_rows_ = expert_buffer_rows(M, c.train.gpu_expert_padding);
  const int64_t R = expert_rows_, hidden = std::max(R * d.Fe, N * d.F);
  flash_ = !kF32 && flash_attention_supported(d.T, d.hd);
  recompute_ = c.parallel.recompute == "block";
  attn_.resize(size_t(d.L));
  ffn_.resize(size_t(d.L));
  int64_t bytes = 0;
  auto sized = [&bytes](auto& a, int64_t n) {
    a.resize(n);
    bytes += a.bytes();
  };
  auto attn_arrays = [&](AttnActs<T>& a) {
    sized(a.rstd, N), sized(a.xn, N * D), sized(a.q, N * qd), sized(a.k, N * kvd);
    sized(a.v, N * kvd), sized(a.y, N * qd);
    if (flash_) sized(a.lse, d.B * d.H * d.T);
    else sized(a.att, d.B * d.H * d.T * d.T);
  };
  // An FFN's activations for MoE and/or dense layers (the workspace serves both kinds).
  auto ffn_arrays = [&](FfnActs<T>& f, bool moe, bool dense) {
    sized(f.x_in, N * D), sized(f.rstd, N);
    if (kF32 || moe) sized(f.xn32, N * D);  // bf16 dense layers need only xn_t
    if (!kF32) sized(f.xn_t, N * D);
    const int64_t hidden_rows = std::max(moe ? R * d.Fe : 0, dense ? N * d.F : 0);
    sized(f.h1, hidden_rows), sized(f.h3, hidden_rows), sized(f.act, hidden_rows);
    if (moe) {
      sized(f.logits, N * E), sized(f.probs, N * E), sized(f.weights, M), sized(f.lse, N), sized(f.sorted_weights, R);
      sized(f.idx, M), sized(f.slots, R), sized(f.rows, R), sized(f.slot_row, M), f.offsets.resize(E + 1);
      f.sums.resize(E + 2);
      sized(f.xe, R * D), sized(f.ye, R * D);
    }
  };
  bool any_moe = false, any_dense = false;
  for (int64_t i = 0; i < d.L; ++i) {
    sized(attn_[size_t(i)].x_in, N * D);
    const bool moe = c.model.is_moe_layer(i);
    any_moe |= moe;
    any_dense |= !moe;
    if (recompute_) continue;
    attn_arrays(attn_[size_t(i)]);
    ffn_arrays(ffn_[size_t(i)], moe, !moe);
  }
  if (recompute_) {
    attn_arrays(wa_);
    ffn_arrays(wf_, any_moe, any_dense);
    sized(recompute_out_, N * D);
  }
  sized(inputs_, N), sized(targets_, N), sized(xf_, N * D), sized(rstdf_, N);
  sized(lse_, N), sized(losses, N), sized(xnf_t_, N * D), sized(logits_, N * d.V);
  act_bytes_ = bytes;
  loss_sum_.resize(1);
  dlosses_.resize(N), dlogits_.resize(N * d.V);
  dx_.resize(N * D), dxn32_.resize(N * D), stage_.resize(N * D), dx_t_.resize(N * D);
  dxn_t_.resize(N * D), dy_.resize(N * qd), dq_.resize(N * qd), dk_.resize(N * kvd), dv_.resize(N * kvd);
  dxe_.resize(R * D), dh1_.resize(hidden), dh3_.resize(hidden);
  dact_.resize(hidden), dws_.resize(R), dw_slot_.resize(M), layout_slots_.resize(R), layout_rows_.resize(R),
      starts_.resize(E + 1), dlogits_r_.resize(N * E), aux_coef_.resize(E);
  for (int64_t i = 0; i < d.L; ++i) moe_index_.push_back(c.model.is_moe_layer(i) ? int64_t(stats.size()) : -1),
      stats.resize(stats.size() + (c.model.is_moe_layer(i) ? 1 : 0));
  choose_flash_block();
}

template <typename T>
void StepImpl<T>::choose_flash_block() {
  attention_kernel = flash_ ? "flash, 64-row blocks" : "cuBLAS";
  if constexpr (!kF32) {
    if (!flash_ || d.L == 0 || d.T % 128 != 0) return;
    // One forward + backward of layer 0's attention per block shape (after an untimed one), on
    // zeroed inputs: the kernels' work does not depend on the values.
    AttnActs<T>& a = attn_acts(0);
    for (auto* b : {&a.q, &a.k, &a.v, &dy_}) b->zero(s);
    struct Events {
      cudaEvent_t begin = nullptr, end = nullptr;
      ~Events() {
        if (begin) cudaEventDestroy(begin);
        if (end) cudaEventDestroy(end);
      }
    } ev;
    MOE_CUDA_CHECK(cudaEventCreate(&ev.begin));
    MOE_CUDA_CHECK(cudaEventCreate(&ev.end));
    auto time_ms = [&](FlashBlock block) {
      auto once = [&] {
        flash_attention_forward(a.y.get(), a.lse.get(), a.q.get(), a.k.get(), a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s,
                                block);
        flash_attention_backward(dq_.get(), dk_.get(), dv_.get(), dy_.get(), a.y.get(), a.lse.get(), a.q.get(),
                                 a.k.get(), a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s, block, /*accumulate=*/false);
      };
      once();
      MOE_CUDA_CHECK(cudaEventRecord(ev.begin, s));
      once();
      once();
      MOE_CUDA_CHECK(cudaEventRecord(ev.end, s));
      MOE_CUDA_CHECK(cudaEventSynchronize(ev.end));
      float ms = 0;
      MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.begin, ev.end));
      return ms / 2;
    };
    const float t64 = time_ms(FlashBlock::k64), t128 = time_ms(FlashBlock::k128);
    flash_block_ = t128 < t64 ? FlashBlock::k128 : FlashBlock::k64;
    char note[96];
    std::snprintf(note, sizeof note, "flash, %s-row blocks (fwd+bwd of one layer: 64: %.3f ms, 128: %.3f ms)",
                  flash_block_ == FlashBlock::k128 ? "128" : "64", double(t64), double(t128));
    attention_kernel = note;
  }
}

template <typename T>
void StepImpl<T>::attention_forward_block(AttnActs<T>& a, const float* x, float* out, const BlockParams& p) {
  const int64_t N = d.N, D = d.D, qd = d.H * d.hd, kvd = d.KV * d.hd;
  if constexpr (kF32) rmsnorm_forward(a.xn.get(), a.rstd.get(), x, p.attention_norm, N, D, d.eps, s);
  else rmsnorm_forward(a.xn.get(), nullptr, a.rstd.get(), x, p.attention_norm, N, D, d.eps, s);
  matmul_forward(a.q.get(), a.xn.get(), pc(p.wq), N, D, qd, false, s);
  matmul_forward(a.k.get(), a.xn.get(), pc(p.wk), N, D, kvd, false, s);
  matmul_forward(a.v.get(), a.xn.get(), pc(p.wv), N, D, kvd, false, s);
  rope_forward(a.q.get(), a.q.get(), d.B, d.T, d.H, d.hd, d.theta, s);
  rope_forward(a.k.get(), a.k.get(), d.B, d.T, d.KV, d.hd, d.theta, s);
  mark("attention core fwd");  // (a sub-phase: bench_gpu_train's breakdown)
  if constexpr (!kF32) {
    if (flash_) {
      flash_attention_forward(a.y.get(), a.lse.get(), a.q.get(), a.k.get(), a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s,
                              flash_block_);
    } else {
      cuda::attention_forward(a.y.get(), a.att.get(), a.q.get(), a.k.get(), a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s);
    }
  } else {
    cuda::attention_forward(a.y.get(), a.att.get(), a.q.get(), a.k.get(), a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s);
  }
  mark("attention fwd");
  project_residual(out, x, a.y.get(), pc(p.wo), qd);
}

template <typename T>
void StepImpl<T>::ffn_forward_block(int64_t i, FfnActs<T>& f, float* out, const BlockParams& p,
                                    const SumReducer& reduce_sum, DeviceLosses& losses) {
  const int64_t N = d.N, D = d.D;
  const float* x = f.x_in.get();
  const bool moe = c.model.is_moe_layer(i);
  if constexpr (kF32) rmsnorm_forward(f.xn32.get(), f.rstd.get(), x, p.ffn_norm, N, D, d.eps, s);
  else rmsnorm_forward(f.xn_t.get(), moe ? f.xn32.get() : nullptr, f.rstd.get(), x, p.ffn_norm, N, D, d.eps, s);
  if (moe) return moe_forward(i, f, out, p, reduce_sum, losses);
  matmul_forward(f.h1.get(), f.xn(), pc(p.w1), N, D, d.F, false, s);
  matmul_forward(f.h3.get(), f.xn(), pc(p.w3), N, D, d.F, false, s);
  swiglu_forward(f.act.get(), f.h1.get(), f.h3.get(), N * d.F, s);
  project_residual(out, x, f.act.get(), pc(p.w2), d.F);
}

// Global statistics and losses of a MoE layer, reduced like moe/moe_layer.cpp's reduce_router_stats;
// sums: the E probability sums, the lse^2 sum and the entropy sum of this rank's tokens.
template <typename T>
void StepImpl<T>::routing_statistics(int64_t i, FfnActs<T>& f, const std::vector<double>& sums, const BlockParams& p,
                                     const SumReducer& reduce_sum, DeviceLosses& losses) {
  const int64_t N = d.N, E = d.E, K = d.K;
  const MoeConfig& mc = c.moe;
  FfnActs<T>& kept = ffn_[size_t(i)];  // the routing state the backward reads (per layer under recompute too)
  RouterStats g;
  std::vector<double> buf(static_cast<size_t>(2 * E + 3));
  for (int64_t e = 0; e < E; ++e) {
    buf[size_t(e)] = double(f.offs[size_t(e + 1)] - f.offs[size_t(e)]);
    buf[size_t(E + e)] = sums[size_t(e)];
  }
  buf[size_t(2 * E)] = sums[size_t(E)];
  buf[size_t(2 * E + 1)] = sums[size_t(E + 1)];
  buf[size_t(2 * E + 2)] = double(N);
  if (reduce_sum) reduce_sum(buf);
  g.counts.assign(buf.begin(), buf.begin() + E);
  g.prob_sum.assign(buf.begin() + E, buf.begin() + 2 * E);
  g.lse_sq_sum = buf[size_t(2 * E)];
  g.entropy_sum = buf[size_t(2 * E + 1)];
  g.tokens = buf[size_t(2 * E + 2)];
  kept.global_tokens = g.tokens;
  const RouterLosses rl = router_losses(g, d, mc);
  losses.aux += rl.aux;
  losses.z += rl.z;
  // Switch aux gradient per expert (routing::aux_gradient), constant over tokens.
  kept.aux_coef.assign(size_t(E), 0.0f);
  if (mc.aux_loss_type == "switch" && mc.aux_loss_coeff != 0)
    for (int64_t e = 0; e < E; ++e)
      kept.aux_coef[size_t(e)] =
          float(mc.aux_loss_coeff * double(E) * (g.counts[size_t(e)] / (g.tokens * double(K))) / g.tokens);
  LayerLoadStats& st = stats[size_t(moe_index_[size_t(i)])];
  st.tokens_per_expert.assign(g.counts.begin(), g.counts.end());
  st.dropped = 0;
  st.assignments = int64_t(g.tokens) * K;
  st.entropy = g.entropy_sum / g.tokens;
  st.aux_loss = rl.aux;
  st.z_loss = rl.z;
  if (mc.bias_update_rate > 0) {
    std::vector<float> bias(static_cast<size_t>(E));
    MOE_CUDA_CHECK(cudaMemcpy(bias.data(), p.router_bias, sizeof(float) * E, cudaMemcpyDeviceToHost));
    st.bias = next_balancing_bias(bias.data(), st.tokens_per_expert, st.assignments, mc.bias_update_rate);
  } else {
    st.bias.clear();
  }

}

template <typename T>
void StepImpl<T>::moe_forward(int64_t i, FfnActs<T>& f, float* out, const BlockParams& p,
                              const SumReducer& reduce_sum, DeviceLosses& losses) {
  const int64_t N = d.N, D = d.D, E = d.E, K = d.K, M = N * K, Fe = d.Fe;
  const MoeConfig& mc = c.moe;
  matmul_forward(f.logits.get(), f.xn32.get(), p.router, N, D, E, false, s);  // router stays fp32
  router_topk_forward(f.probs.get(), f.idx.get(), f.weights.get(), f.logits.get(), p.router_bias, N, E, K,
                      mc.norm_topk_prob, float(mc.router_scale), s);
  router_stats(f.lse.get(), f.sums.get(), f.logits.get(), f.probs.get(), N, E, s);
  permute_by_expert(f.slots.get(), f.rows.get(), f.offsets.get(), f.idx.get(), M, K, E, s);  // compact order
  // The expert GEMMs need the expert sizes on the host: one synchronisation per MoE layer.
  f.offs.resize(size_t(E + 1));
  std::vector<double> sums(static_cast<size_t>(E + 2));
  MOE_CUDA_CHECK(cudaMemcpyAsync(f.offs.data(), f.offsets.get(), sizeof(int64_t) * (E + 1), cudaMemcpyDeviceToHost, s));
  MOE_CUDA_CHECK(cudaMemcpyAsync(sums.data(), f.sums.get(), sizeof(double) * (E + 2), cudaMemcpyDeviceToHost, s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  // Dropless: every slot is in the layout once, so slot_row (below) is complete.
  MOE_CUDA_REQUIRE(f.offs[size_t(E)] == M, "moe_forward: the permutation holds " + std::to_string(f.offs[size_t(E)]) +
                                               " of " + std::to_string(M) + " slots");
  // The statistics and losses (and their reduction over ranks) come from the first forward only.
  if (!recomputing_) routing_statistics(i, f, sums, p, reduce_sum, losses);
  if (ep) {
    ep_experts_forward(f, p);
    combine_rows(out, f.x_in.get(), f.ys.get(), f.slot_row.get(), f.weights.get(), N, K, D, s);
    return;
  }
  f.experts = E;
  f.blocks = expert_blocks(f.offs.data(), E, expert_rows_, c.train.gpu_expert_padding);
  f.used_rows = f.blocks.block ? f.blocks.rows() : M;
  const int64_t R = f.used_rows;
  if (!recomputing_) {
    row_use.routed += M;
    row_use.computed += R;
    row_use.blocked_layers += f.blocks.block ? 1 : 0;
    row_use.one_block_rows += expert_blocks(f.offs.data(), E, std::numeric_limits<int64_t>::max(), 1.0).rows();
  }
  if (f.blocks.block) {  // expand into the scratch arrays, which then become the layer's
    MOE_CUDA_CHECK(cudaMemcpyAsync(starts_.get(), f.blocks.start.data(), sizeof(int64_t) * (E + 1),
                                   cudaMemcpyHostToDevice, s));
    expand_expert_rows(layout_slots_.get(), layout_rows_.get(), f.slots.get(), f.rows.get(), f.offsets.get(),
                       starts_.get(), E, R, s);
    std::swap(f.slots, layout_slots_);
    std::swap(f.rows, layout_rows_);
  }
  invert_permutation(f.slot_row.get(), f.slots.get(), R, s);  // slot -> layout row, for the combines
  gather_rows(f.sorted_weights.get(), f.weights.get(), f.slots.get(), R, 1, s);
  gather_rows(f.xe.get(), f.xn(), f.rows.get(), R, D, s);

  expert_forward(f.h1.get(), f.xe.get(), pc(p.experts_w1), f, D, Fe);
  expert_forward(f.h3.get(), f.xe.get(), pc(p.experts_w3), f, D, Fe);
  swiglu_forward(f.act.get(), f.h1.get(), f.h3.get(), R * Fe, s);
  expert_forward(f.ye.get(), f.act.get(), pc(p.experts_w2), f, Fe, D);
  // Into the residual, out of place: out = x_in + the weighted expert rows.
  combine_rows(out, f.x_in.get(), f.ye.get(), f.slot_row.get(), f.weights.get(), N, K, D, s);
}

// Grows a buffer that holds a varying number of rows (expert parallelism: the rows received).
template <typename A>
void ensure_size(A& a, int64_t n) {
  if (a.size() < n) a.resize(n);
}

template <typename T>
void StepImpl<T>::ep_exchange(const T* send, const std::vector<int64_t>& send_rows, T* recv,
                              const std::vector<int64_t>& recv_rows) {
  const int64_t row_bytes = d.D * int64_t(sizeof(T));
  std::vector<int64_t> sb(send_rows.size()), rb(recv_rows.size());
  for (size_t r = 0; r < sb.size(); ++r) {
    sb[r] = send_rows[r] * row_bytes;
    rb[r] = recv_rows[r] * row_bytes;
  }
  ep->alltoallv(send, sb.data(), recv, rb.data());
  for (size_t r = 0; r < sb.size(); ++r) ep_sent[r] += sb[r];
}

// Received rows arrive source-major (peer 0's rows for local experts 0, 1, ..., then peer 1's);
// the local layout is expert-major (expert 0's rows from peer 0, 1, ..., then expert 1's), compact
// or blocked like the single-rank layout. local_src and recv_local map between the two.
template <typename T>
void StepImpl<T>::ep_layout(FfnActs<T>& f, const std::vector<int64_t>& recv_counts) {
  const int64_t P = ep->size(), El = d.E / P;
  std::vector<int64_t> base(size_t(P * El));  // first received row of (peer, local expert)
  int64_t received = 0;
  for (int64_t r = 0; r < P; ++r)
    for (int64_t e = 0; e < El; ++e) {
      base[size_t(r * El + e)] = received;
      received += recv_counts[size_t(r * El + e)];
    }
  f.received = received;
  f.experts = El;
  f.offs.assign(size_t(El + 1), 0);
  for (int64_t e = 0; e < El; ++e) {
    int64_t n = 0;
    for (int64_t r = 0; r < P; ++r) n += recv_counts[size_t(r * El + e)];
    f.offs[size_t(e + 1)] = f.offs[size_t(e)] + n;
  }
  const double pad = c.train.gpu_expert_padding;
  f.blocks = expert_blocks(f.offs.data(), El, expert_buffer_rows(received, pad), pad);
  f.used_rows = f.blocks.block ? f.blocks.rows() : received;
  const std::vector<int64_t>& start = f.blocks.block ? f.blocks.start : f.offs;
  std::vector<int32_t> local_src(static_cast<size_t>(f.used_rows), -1), recv_local(static_cast<size_t>(received));
  for (int64_t e = 0; e < El; ++e) {
    int64_t row = start[size_t(e)];
    for (int64_t r = 0; r < P; ++r)
      for (int64_t k = 0; k < recv_counts[size_t(r * El + e)]; ++k, ++row) {
        const int64_t src = base[size_t(r * El + e)] + k;
        local_src[size_t(row)] = int32_t(src);
        recv_local[size_t(src)] = int32_t(row);
      }
  }
  ensure_size(f.local_src, f.used_rows);
  ensure_size(f.recv_local, received);
  MOE_CUDA_CHECK(cudaMemcpyAsync(f.local_src.get(), local_src.data(), sizeof(int32_t) * local_src.size(),
                                 cudaMemcpyHostToDevice, s));
  MOE_CUDA_CHECK(cudaMemcpyAsync(f.recv_local.get(), recv_local.data(), sizeof(int32_t) * recv_local.size(),
                                 cudaMemcpyHostToDevice, s));
}

template <typename T>
void StepImpl<T>::ep_experts_forward(FfnActs<T>& f, const BlockParams& p) {
  const int64_t N = d.N, D = d.D, E = d.E, K = d.K, M = N * K, Fe = d.Fe, P = ep->size(), El = E / P;
  // This rank's rows stay in compact order: peer r's experts' rows are contiguous.
  invert_permutation(f.slot_row.get(), f.slots.get(), M, s);
  gather_rows(f.sorted_weights.get(), f.weights.get(), f.slots.get(), M, 1, s);
  ensure_size(ep_send_, M * D);
  gather_rows(ep_send_.get(), f.xn(), f.rows.get(), M, D, s);
  // Rows per (peer, the peer's local expert), both ways: all-to-all of the counts (device memory,
  // as NCCL wants it), then the rows by all-to-all-v.
  const std::vector<int64_t> global_offs = f.offs;
  std::vector<int64_t> counts(size_t(2 * P * El));
  for (int64_t e = 0; e < E; ++e) counts[size_t(e)] = global_offs[size_t(e + 1)] - global_offs[size_t(e)];
  ensure_size(ep_counts_, 2 * P * El);
  MOE_CUDA_CHECK(cudaMemcpyAsync(ep_counts_.get(), counts.data(), sizeof(int64_t) * P * El, cudaMemcpyHostToDevice, s));
  ep->alltoall(ep_counts_.get(), ep_counts_.get() + P * El, int64_t(sizeof(int64_t)) * El);
  MOE_CUDA_CHECK(cudaMemcpyAsync(counts.data() + P * El, ep_counts_.get() + P * El, sizeof(int64_t) * P * El,
                                 cudaMemcpyDeviceToHost, s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  const std::vector<int64_t> recv_counts(counts.begin() + P * El, counts.end());
  f.send_rows.assign(size_t(P), 0);
  f.recv_rows.assign(size_t(P), 0);
  for (int64_t r = 0; r < P; ++r)
    for (int64_t e = 0; e < El; ++e) {
      f.send_rows[size_t(r)] += counts[size_t(r * El + e)];
      f.recv_rows[size_t(r)] += recv_counts[size_t(r * El + e)];
    }
  ep_layout(f, recv_counts);
  const int64_t R = f.used_rows, Mr = f.received;
  if (!recomputing_) {
    row_use.routed += Mr;
    row_use.computed += R;
    row_use.blocked_layers += f.blocks.block ? 1 : 0;
    row_use.one_block_rows += expert_blocks(f.offs.data(), El, std::numeric_limits<int64_t>::max(), 1.0).rows();
  }
  ensure_size(ep_recv_, Mr * D);
  ep_exchange(ep_send_.get(), f.send_rows, ep_recv_.get(), f.recv_rows);
  for (auto* a : {&f.xe, &f.ye}) ensure_size(*a, R * D);
  for (auto* a : {&f.h1, &f.h3, &f.act}) ensure_size(*a, R * Fe);
  gather_rows(f.xe.get(), ep_recv_.get(), f.local_src.get(), R, D, s);
  expert_forward(f.h1.get(), f.xe.get(), pc(p.experts_w1), f, D, Fe);
  expert_forward(f.h3.get(), f.xe.get(), pc(p.experts_w3), f, D, Fe);
  swiglu_forward(f.act.get(), f.h1.get(), f.h3.get(), R * Fe, s);
  expert_forward(f.ye.get(), f.act.get(), pc(p.experts_w2), f, Fe, D);
  // The outputs back to their tokens' ranks, in the order they were sent.
  gather_rows(ep_recv_.get(), f.ye.get(), f.recv_local.get(), Mr, D, s);
  ensure_size(f.ys, M * D);
  ep_exchange(ep_recv_.get(), f.recv_rows, f.ys.get(), f.send_rows);
}

template <typename T>
void StepImpl<T>::ep_experts_backward(FfnActs<T>& f, const BlockParams& p, const BlockParams& g) {
  const int64_t N = d.N, D = d.D, K = d.K, M = N * K, Fe = d.Fe, R = f.used_rows, Mr = f.received;
  // d(ys) and the combine weights' gradient on this rank, then d(ys) to the experts' ranks.
  ep_send_.zero(s, M * D);
  dws_.zero(s, M);
  scatter_add_rows_backward(ep_send_.get(), dws_.get(), dx_.get(), f.ys.get(), f.rows.get(), f.sorted_weights.get(), M,
                            D, s);
  ep_exchange(ep_send_.get(), f.send_rows, ep_recv_.get(), f.recv_rows);
  ensure_size(dxe_, R * D);
  for (auto* a : {&dh1_, &dh3_, &dact_}) ensure_size(*a, R * Fe);
  gather_rows(dxe_.get(), ep_recv_.get(), f.local_src.get(), R, D, s);  // d(ye) in the local layout
  experts_backward(f, p, g);
  // d(xe) back to the tokens' ranks, then un-permuted (the first writer of dxn32).
  gather_rows(ep_recv_.get(), dxe_.get(), f.recv_local.get(), Mr, D, s);
  ep_exchange(ep_recv_.get(), f.recv_rows, ep_send_.get(), f.send_rows);
  combine_rows(dxn32_.get(), nullptr, ep_send_.get(), f.slot_row.get(), nullptr, N, K, D, s);
}

template <typename T>
DeviceLosses StepImpl<T>::forward(const int32_t* tokens, const SumReducer& reduce_sum) {
  const int64_t N = d.N, D = d.D, Tn = d.T;
  std::vector<int32_t> in(static_cast<size_t>(N)), tg(static_cast<size_t>(N));
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      in[size_t(b * Tn + t)] = tokens[b * (Tn + 1) + t];
      tg[size_t(b * Tn + t)] = tokens[b * (Tn + 1) + t + 1];
    }
  MOE_CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), in.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice, s));
  MOE_CUDA_CHECK(cudaMemcpyAsync(targets_.get(), tg.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice, s));
  marks.mark("embedding fwd", s);
  embedding_forward(d.L > 0 ? attn_[0].x_in.get() : xf_.get(), inputs_.get(), P_.tok_embeddings, N, D, s);
  row_use = {};
  if (ep) ep_sent.assign(size_t(ep->size()), 0);
  DeviceLosses out;
  for (int64_t i = 0; i < d.L; ++i) {
    const BlockParams& p = P_.blocks[size_t(i)];
    FfnActs<T>& f = ffn_acts(i);
    marks.mark("attention fwd", s);
    attention_forward_block(attn_acts(i), attn_[size_t(i)].x_in.get(), f.x_in.get(), p);
    marks.mark(c.model.is_moe_layer(i) ? "moe fwd" : "dense ffn fwd", s);
    ffn_forward_block(i, f, i + 1 < d.L ? attn_[size_t(i + 1)].x_in.get() : xf_.get(), p, reduce_sum, out);
  }
  marks.mark("head fwd", s);
  if constexpr (kF32) rmsnorm_forward(xnf_t_.get(), rstdf_.get(), xf_.get(), P_.norm, N, D, d.eps, s);
  else rmsnorm_forward(xnf_t_.get(), nullptr, rstdf_.get(), xf_.get(), P_.norm, N, D, d.eps, s);
  matmul_forward(logits_.get(), xnf_t_.get(), pc(P_.output), N, D, d.V, false, s);
  cross_entropy_forward(losses.get(), lse_.get(), logits_.get(), targets_.get(), N, d.V, s);
  sum_async(loss_sum_.get(), losses.get(), N, s);
  marks.mark("loss readback", s);
  MOE_CUDA_CHECK(cudaMemcpyAsync(&out.lm_sum, loss_sum_.get(), sizeof(double), cudaMemcpyDeviceToHost, s));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  return out;
}

template <typename T>
void StepImpl<T>::attention_backward_block(AttnActs<T>& a, const float* x, const BlockParams& p, const BlockParams& g) {
  const int64_t N = d.N, D = d.D, qd = d.H * d.hd, kvd = d.KV * d.hd;
  // First writers overwrite (no zeroing, no reads of zeros): dy, the flash gradients, RoPE's
  // backward (in place), the first of the q/k/v input gradients.
  T* dxt = as_t(dx_.get(), dx_t_, N * D);
  matmul_backward(dy_.get(), gc(g.wo), dxt, a.y.get(), pc(p.wo), N, qd, D, s, /*accumulate_dinp=*/false);
  marks.mark("attention core bwd", s);
  bool flashed = false;
  if constexpr (!kF32) {
    if (flash_) {
      flash_attention_backward(dq_.get(), dk_.get(), dv_.get(), dy_.get(), a.y.get(), a.lse.get(), a.q.get(),
                               a.k.get(), a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s, flash_block_,
                               /*accumulate=*/false);
      flashed = true;
    }
  }
  if (!flashed) {
    for (auto* b : {&dq_, &dk_, &dv_}) b->zero(s);  // the cuBLAS attention accumulates
    cuda::attention_backward(dq_.get(), dk_.get(), dv_.get(), dy_.get(), a.att.get(), a.q.get(), a.k.get(),
                             a.v.get(), d.B, d.T, d.H, d.KV, d.hd, s);
  }
  marks.mark("attention bwd", s);
  rope_backward(dq_.get(), dq_.get(), d.B, d.T, d.H, d.hd, d.theta, s, /*accumulate=*/false);
  rope_backward(dk_.get(), dk_.get(), d.B, d.T, d.KV, d.hd, d.theta, s, /*accumulate=*/false);
  matmul_backward(dxn_t_.get(), gc(g.wq), dq_.get(), a.xn.get(), pc(p.wq), N, D, qd, s, /*accumulate_dinp=*/false);
  matmul_backward(dxn_t_.get(), gc(g.wk), dk_.get(), a.xn.get(), pc(p.wk), N, D, kvd, s);
  matmul_backward(dxn_t_.get(), gc(g.wv), dv_.get(), a.xn.get(), pc(p.wv), N, D, kvd, s);
  norm_backward(g.attention_norm, dxn_t_.get(), x, p.attention_norm, a.rstd.get());
}

template <typename T>
void StepImpl<T>::ffn_backward_block(int64_t i, FfnActs<T>& f, const BlockParams& p, const BlockParams& g) {
  const int64_t N = d.N, D = d.D;
  if (c.model.is_moe_layer(i)) {
    const int64_t E = d.E, K = d.K, R = f.used_rows;  // R: rows of the expert layout
    const MoeConfig& mc = c.moe;
    dlogits_r_.zero(s);
    if (ep) {
      ep_experts_backward(f, p, g);
    } else {
      dxe_.zero(s, R * D);
      dws_.zero(s, R);
      scatter_add_rows_backward(dxe_.get(), dws_.get(), dx_.get(), f.ye.get(), f.rows.get(), f.sorted_weights.get(), R,
                                D, s);
      experts_backward(f, p, g);
      // Un-permute: the first writer of dxn32 (the router's input gradient adds to it below).
      combine_rows(dxn32_.get(), nullptr, dxe_.get(), f.slot_row.get(), nullptr, N, K, D, s);
    }
    gather_rows(dw_slot_.get(), dws_.get(), f.slot_row.get(), N * K, 1, s);  // weight gradients back to slots
    const FfnActs<T>& kept = ffn_[size_t(i)];  // routing state of the first forward
    MOE_CUDA_CHECK(cudaMemcpyAsync(aux_coef_.get(), kept.aux_coef.data(), sizeof(float) * E, cudaMemcpyHostToDevice, s));
    const float zc = float(mc.z_loss_coeff * 2.0 / kept.global_tokens);
    router_backward(dlogits_r_.get(), f.probs.get(), f.idx.get(), dw_slot_.get(), f.lse.get(), aux_coef_.get(), zc, N,
                    E, K, mc.norm_topk_prob, float(mc.router_scale), s);
    matmul_backward(dxn32_.get(), g.router, dlogits_r_.get(), f.xn32.get(), p.router, N, D, E, s);
    rmsnorm_backward(dx_.get(), g.ffn_norm, dxn32_.get(), f.x_in.get(), p.ffn_norm, f.rstd.get(), N, D, s);
  } else {  // first writers overwrite, as in the attention backward
    T* dxt = as_t(dx_.get(), dx_t_, N * D);
    matmul_backward(dact_.get(), gc(g.w2), dxt, f.act.get(), pc(p.w2), N, d.F, D, s, /*accumulate_dinp=*/false);
    swiglu_backward(dh1_.get(), dh3_.get(), dact_.get(), f.h1.get(), f.h3.get(), N * d.F, s, /*accumulate=*/false);
    matmul_backward(dxn_t_.get(), gc(g.w1), dh1_.get(), f.xn(), pc(p.w1), N, D, d.F, s, /*accumulate_dinp=*/false);
    matmul_backward(dxn_t_.get(), gc(g.w3), dh3_.get(), f.xn(), pc(p.w3), N, D, d.F, s);
    norm_backward(g.ffn_norm, dxn_t_.get(), f.x_in.get(), p.ffn_norm, f.rstd.get());
  }
}

// Refills the workspace with layer i's activations: its forward again from its kept input, the
// same kernels on the same values (so the same results, bit for bit), without the statistics, the
// losses and their reduction; the output goes to scratch (the next layer's input is kept).
template <typename T>
void StepImpl<T>::recompute_forward(int64_t i) {
  marks.mark("recompute", s);
  recomputing_ = true;
  const BlockParams& p = P_.blocks[size_t(i)];
  DeviceLosses unused;
  attention_forward_block(wa_, attn_[size_t(i)].x_in.get(), wf_.x_in.get(), p);
  ffn_forward_block(i, wf_, recompute_out_.get(), p, SumReducer{}, unused);
  recomputing_ = false;
}

template <typename T>
void StepImpl<T>::backward(double global_tokens) {
  const int64_t N = d.N, D = d.D;
  marks.mark("head bwd", s);
  if constexpr (!kF32) gc_.zero(s);
  fill(dlosses_.get(), float(1.0 / global_tokens), N, s);
  cross_entropy_backward(dlogits_.get(), dlosses_.get(), logits_.get(), lse_.get(), targets_.get(), N, d.V, s,
                         /*accumulate=*/false);
  matmul_backward(dxn_t_.get(), gc(G_.output), dlogits_.get(), xnf_t_.get(), pc(P_.output), N, D, d.V, s,
                  /*accumulate_dinp=*/false);
  // dx starts here: the final norm's input gradient overwrites it.
  rmsnorm_backward(dx_.get(), G_.norm, dxn_t_.get(), xf_.get(), P_.norm, rstdf_.get(), N, D, s, /*accumulate=*/false);
  for (int64_t i = d.L - 1; i >= 0; --i) {
    if (recompute_) recompute_forward(i);
    marks.mark(c.model.is_moe_layer(i) ? "moe bwd" : "dense ffn bwd", s);
    ffn_backward_block(i, ffn_acts(i), P_.blocks[size_t(i)], G_.blocks[size_t(i)]);
    marks.mark("attention bwd", s);
    attention_backward_block(attn_acts(i), attn_[size_t(i)].x_in.get(), P_.blocks[size_t(i)], G_.blocks[size_t(i)]);
  }
  marks.mark("embedding bwd + grads", s);
  embedding_backward(G_.tok_embeddings, dx_.get(), inputs_.get(), N, D, s);
  if constexpr (!kF32) accumulate(grads.get(), gc_.get(), grads.size(), s);
  marks.mark("end", s);
}

}  // namespace

std::unique_ptr<DeviceModel::Impl> make_device_impl(const Config& c, int64_t batch, cudaStream_t stream,
                                                   comm::Communicator* ep) {
  if (c.train.precision == "bf16") return std::make_unique<StepImpl<bf16>>(c, batch, stream, ep);
  return std::make_unique<StepImpl<float>>(c, batch, stream, ep);
}

}  // namespace moe::gpu
