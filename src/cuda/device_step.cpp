// DeviceModel's forward and backward for one compute type T (float or bf16). The order of
// operations follows src/model/transformer.cpp, attention.cpp, mlp.cpp and moe/moe_layer.cpp;
// expert parallelism's exchanges are in device_step_ep.cpp.
#include <cstdio>
#include <limits>
#include <utility>

#include "src/cuda/device_step_impl.h"

namespace moe::gpu {

namespace step {


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

template class StepImpl<float>;
template class StepImpl<bf16>;

}  // namespace step

std::unique_ptr<DeviceModel::Impl> make_device_impl(const Config& c, int64_t batch, cudaStream_t stream,
                                                   comm::Communicator* ep) {
  if (c.train.precision == "bf16") return std::make_unique<step::StepImpl<step::bf16>>(c, batch, stream, ep);
  return std::make_unique<step::StepImpl<float>>(c, batch, stream, ep);
}

}  // namespace moe::gpu
