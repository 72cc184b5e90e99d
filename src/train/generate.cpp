#include "src/train/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/ops.h"
#include "src/core/error.h"
#include "src/core/philox.h"

namespace moe {

void check_generation_config(const Config& c) {
  if (c.model.moe_every > 0 && c.moe.router == "expert_choice")
    throw ConfigError("moe.router in " + c.source +
                      ": expert_choice lets each expert pick tokens across a batch, which is not causal, so text "
                      "cannot be generated token by token; generate from a token-choice model (softmax or sigmoid)");
}

namespace {

Config decoding_config(Config c) {
  check_generation_config(c);
  c.moe.capacity_factor = 0.0;  // one token at a time: dropping has no meaning
  return c;
}

}  // namespace

Decoder::Decoder(const Config& c, const ModelParams& p, int64_t capacity)
    : c_(decoding_config(c)),
      d_(make_dims(c_, 1)),
      p_(p),
      cache_(c_.model.n_layers, capacity, c_.model.n_kv_heads * c_.model.head_dim()) {
  d_.T = d_.N = 1;
  x_.resize(size_t(d_.D));
  xn_.resize(size_t(d_.D));
  rstd_.resize(1);
  q_.resize(size_t(d_.H * d_.hd));
  y_.resize(size_t(d_.H * d_.hd));
  logits_.resize(size_t(d_.V));
  moe_.resize(size_t(d_.L));
  dispatchers_.resize(size_t(d_.L));
  for (int64_t i = 0; i < d_.L; ++i) {
    if (!c_.model.is_moe_layer(i)) continue;
    moe_[size_t(i)].resize(d_);
    moe_[size_t(i)].ctx.seed = c_.train.seed;
    moe_[size_t(i)].ctx.layer = i;
    moe_[size_t(i)].ctx.training = false;  // no router jitter
    dispatchers_[size_t(i)] = std::make_unique<LocalDispatcher>();
  }
  dense_.resize(1, d_.F);
}

const std::vector<float>& Decoder::feed(int32_t token) {
  MOE_CHECK(token >= 0 && token < d_.V, "decoder: token id " + std::to_string(token) + " outside the vocabulary");
  const int64_t pos = cache_.size(), D = d_.D, qd = d_.H * d_.hd, kvd = d_.KV * d_.hd;
  const SumReducer local = [](std::vector<double>&) {};
  ops::embedding_forward(x_.data(), &token, p_.tok_embeddings, 1, D);
  for (int64_t i = 0; i < d_.L; ++i) {
    const BlockParams& bp = p_.blocks[size_t(i)];
    float *k = cache_.k(i, pos), *v = cache_.v(i, pos);
    ops::rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), bp.attention_norm, 1, D, d_.eps);
    ops::matmul_forward(q_.data(), xn_.data(), bp.wq, 1, D, qd);
    ops::matmul_forward(k, xn_.data(), bp.wk, 1, D, kvd);
    ops::matmul_forward(v, xn_.data(), bp.wv, 1, D, kvd);
    rope_at_position(q_.data(), pos, d_.H, d_.hd, d_.theta);
    rope_at_position(k, pos, d_.KV, d_.hd, d_.theta);
    cached_attention(y_.data(), q_.data(), cache_.k(i, 0), cache_.v(i, 0), pos + 1, d_.H, d_.KV, d_.hd, scores_);
    ops::matmul_forward(x_.data(), y_.data(), bp.wo, 1, qd, D, /*accumulate=*/true);
    ops::rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), bp.ffn_norm, 1, D, d_.eps);
    if (c_.model.is_moe_layer(i)) {
      moe_[size_t(i)].ctx.token_offset = pos;
      moe_layer_forward(x_.data(), moe_[size_t(i)], xn_.data(), bp, d_, c_.moe, *dispatchers_[size_t(i)], local);
    } else {
      swiglu_mlp_forward(x_.data(), dense_, xn_.data(), bp.w1, bp.w3, bp.w2, 1, D, d_.F);
    }
  }
  cache_.advance();
  ops::rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), p_.norm, 1, D, d_.eps);
  ops::matmul_forward(logits_.data(), xn_.data(), p_.output, 1, D, d_.V);
  return logits_;
}

int32_t sample_token(const std::vector<float>& logits, const SamplingOptions& o, int64_t index) {
  const int64_t V = int64_t(logits.size());
  MOE_CHECK(V > 0, "sample_token: no logits");
  if (o.temperature <= 0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> prob(static_cast<size_t>(V));
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += prob[size_t(i)] = std::exp((double(logits[size_t(i)]) - mx) / o.temperature);
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return prob[size_t(a)] > prob[size_t(b)]; });
  // The nucleus: the shortest prefix of the sorted ids whose probability reaches top_p.
  size_t keep = 0;
  double mass = 0;
  while (keep < order.size() && (keep == 0 || mass < o.top_p * sum)) mass += prob[size_t(order[keep++])];
  const double u = double(philox_uniform(rng_key(o.seed, "generate"), uint64_t(index))) * mass;
  double acc = 0;
  for (size_t j = 0; j < keep; ++j) {
    acc += prob[size_t(order[j])];
    if (u < acc) return order[j];
  }
  return order[keep - 1];
}

std::vector<int32_t> generate(const Config& c, const ModelParams& p, const std::vector<int32_t>& prompt,
                              int64_t max_new, const SamplingOptions& o, int32_t stop_id) {
  Decoder dec(c, p, int64_t(prompt.size()) + max_new);
  return generate(dec, prompt, max_new, o, stop_id);
}

std::vector<int32_t> generate(TokenDecoder& dec, const std::vector<int32_t>& prompt, int64_t max_new,
                              const SamplingOptions& o, int32_t stop_id) {
  MOE_CHECK(!prompt.empty(), "generate: empty prompt");
  const std::vector<float>* logits = nullptr;
  for (int32_t t : prompt) logits = &dec.feed(t);
  std::vector<int32_t> out;
  for (int64_t n = 0; n < max_new; ++n) {
    const int32_t next = sample_token(*logits, o, n);
    if (next == stop_id) break;
    out.push_back(next);
    if (n + 1 < max_new) logits = &dec.feed(next);
  }
  return out;
}

}  // namespace moe
