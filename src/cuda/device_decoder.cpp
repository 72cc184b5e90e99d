#include "src/cuda/device_decoder.h"

#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/matmul.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/router.cuh"
#include "src/core/error.h"

namespace moe::gpu {

using namespace moe::cuda;

std::string device_decode_unsupported(const Config& c) {
  const MoeConfig& m = c.moe;
  if (c.model.moe_every == 0) return "";
  if (m.router != "softmax" || m.score_order != "softmax_then_topk" || m.num_groups > 1)
    return "the GPU decoder routes with moe.router softmax, score_order softmax_then_topk and no group limit";
  if (m.num_shared_experts > 0) return "the GPU decoder has no shared experts (moe.num_shared_experts)";
  if (m.top_k > 32) return "the GPU decoder routes at most 32 experts per token (moe.top_k)";
  return "";
}

DeviceDecoder::DeviceDecoder(const Config& c, const float* host_params, int64_t capacity, cudaStream_t stream)
    : c_(c), d_(make_dims(c, 1)), s_(stream), table_(build_param_table(c)), capacity_(capacity) {
  check_generation_config(c_);
  if (const std::string why = device_decode_unsupported(c_); !why.empty()) throw ConfigError(why);
  d_.T = d_.N = 1;
  params_.resize(table_.total());
  MOE_CUDA_CHECK(cudaMemcpyAsync(params_.get(), host_params, sizeof(float) * size_t(table_.total()),
                                 cudaMemcpyHostToDevice, s_));
  P_ = bind_params(c_, table_, params_.get());
  const int64_t D = d_.D, kvd = d_.KV * d_.hd, qd = d_.H * d_.hd, F = std::max(d_.F, d_.Fe);
  kcache_.resize(d_.L * capacity_ * kvd);
  vcache_.resize(d_.L * capacity_ * kvd);
  scores_.resize(d_.H * capacity_);
  for (auto* a : {&x_, &xn_, &ye_}) a->resize(D);
  rstd_.resize(1);
  q_.resize(qd);
  y_.resize(qd);
  for (auto* a : {&h1_, &h3_, &act_}) a->resize(std::max<int64_t>(F, 1));
  rlogits_.resize(std::max<int64_t>(d_.E, 1));
  probs_.resize(std::max<int64_t>(d_.E, 1));
  weights_.resize(std::max<int64_t>(d_.K, 1));
  idx_.resize(std::max<int64_t>(d_.K, 1));
  logits_.resize(d_.V);
  token_.resize(1);
  logits_host_.resize(size_t(d_.V));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s_));
}

void DeviceDecoder::moe_ffn(const BlockParams& p) {
  const int64_t D = d_.D, E = d_.E, K = d_.K, Fe = d_.Fe;
  matmul_forward(rlogits_.get(), xn_.get(), p.router, 1, D, E, false, s_);
  router_topk_forward(probs_.get(), idx_.get(), weights_.get(), rlogits_.get(), p.router_bias, 1, E, K,
                      c_.moe.norm_topk_prob, float(c_.moe.router_scale), s_);
  idx_host_.resize(size_t(K));
  weights_host_.resize(size_t(K));
  MOE_CUDA_CHECK(cudaMemcpyAsync(idx_host_.data(), idx_.get(), sizeof(int32_t) * K, cudaMemcpyDeviceToHost, s_));
  MOE_CUDA_CHECK(cudaMemcpyAsync(weights_host_.data(), weights_.get(), sizeof(float) * K, cudaMemcpyDeviceToHost, s_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s_));
  // One token: its k experts one after another (the experts it did not choose cost nothing).
  for (int64_t j = 0; j < K; ++j) {
    const int64_t e = idx_host_[size_t(j)];
    matmul_forward(h1_.get(), xn_.get(), p.experts_w1 + e * Fe * D, 1, D, Fe, false, s_);
    matmul_forward(h3_.get(), xn_.get(), p.experts_w3 + e * Fe * D, 1, D, Fe, false, s_);
    swiglu_forward(act_.get(), h1_.get(), h3_.get(), Fe, s_);
    matmul_forward(ye_.get(), act_.get(), p.experts_w2 + e * D * Fe, 1, Fe, D, false, s_);
    scale_inplace(ye_.get(), weights_host_[size_t(j)], D, s_);
    add_inplace(x_.get(), ye_.get(), D, s_);
  }
}

const std::vector<float>& DeviceDecoder::feed(int32_t token) {
  MOE_CHECK(token >= 0 && token < d_.V, "decoder: token id " + std::to_string(token) + " outside the vocabulary");
  MOE_CHECK(pos_ < capacity_, "decoder: the KV cache holds " + std::to_string(capacity_) + " positions");
  const int64_t D = d_.D, qd = d_.H * d_.hd, kvd = d_.KV * d_.hd;
  MOE_CUDA_CHECK(cudaMemcpyAsync(token_.get(), &token, sizeof(int32_t), cudaMemcpyHostToDevice, s_));
  embedding_forward(x_.get(), token_.get(), P_.tok_embeddings, 1, D, s_);
  for (int64_t i = 0; i < d_.L; ++i) {
    const BlockParams& p = P_.blocks[size_t(i)];
    float* kl = kcache_.get() + i * capacity_ * kvd;
    float* vl = vcache_.get() + i * capacity_ * kvd;
    rmsnorm_forward(xn_.get(), rstd_.get(), x_.get(), p.attention_norm, 1, D, d_.eps, s_);
    matmul_forward(q_.get(), xn_.get(), p.wq, 1, D, qd, false, s_);
    matmul_forward(kl + pos_ * kvd, xn_.get(), p.wk, 1, D, kvd, false, s_);
    matmul_forward(vl + pos_ * kvd, xn_.get(), p.wv, 1, D, kvd, false, s_);
    rope_position_forward(q_.get(), pos_, d_.H, d_.hd, d_.theta, s_);
    rope_position_forward(kl + pos_ * kvd, pos_, d_.KV, d_.hd, d_.theta, s_);
    decode_attention(y_.get(), scores_.get(), q_.get(), kl, vl, pos_ + 1, d_.H, d_.KV, d_.hd, s_);
    matmul_forward(x_.get(), y_.get(), p.wo, 1, qd, D, true, s_);
    rmsnorm_forward(xn_.get(), rstd_.get(), x_.get(), p.ffn_norm, 1, D, d_.eps, s_);
    if (c_.model.is_moe_layer(i)) {
      moe_ffn(p);
    } else {
      matmul_forward(h1_.get(), xn_.get(), p.w1, 1, D, d_.F, false, s_);
      matmul_forward(h3_.get(), xn_.get(), p.w3, 1, D, d_.F, false, s_);
      swiglu_forward(act_.get(), h1_.get(), h3_.get(), d_.F, s_);
      matmul_forward(x_.get(), act_.get(), p.w2, 1, d_.F, D, true, s_);
    }
  }
  ++pos_;
  rmsnorm_forward(xn_.get(), rstd_.get(), x_.get(), P_.norm, 1, D, d_.eps, s_);
  matmul_forward(logits_.get(), xn_.get(), P_.output, 1, D, d_.V, false, s_);
  MOE_CUDA_CHECK(cudaMemcpyAsync(logits_host_.data(), logits_.get(), sizeof(float) * size_t(d_.V),
                                 cudaMemcpyDeviceToHost, s_));
  MOE_CUDA_CHECK(cudaStreamSynchronize(s_));
  return logits_host_;
}

}  // namespace moe::gpu
