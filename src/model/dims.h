// Sizes of one forward pass, derived once from the config.
#pragma once
#include <cstdint>

#include "src/train/config.h"

namespace moe {

struct Dims {
  int64_t B = 0, T = 0, N = 0;  // sequences, positions, tokens (N = B*T)
  int64_t D = 0, V = 0, L = 0;
  int64_t H = 0, KV = 0, hd = 0; // this rank's heads (H/tp, KV/tp under tensor parallelism)
  int64_t F = 0;                // dense ffn hidden units of this rank (ffn_hidden/tp)
  int64_t tp = 1;               // tensor-parallel degree the sizes above are divided by
  int64_t E = 0, K = 0, Fe = 0; // experts, top-k, expert hidden of this rank (expert_hidden/etp)
  int64_t etp = 1;              // expert tensor-parallel degree Fe is divided by
  int64_t Fs = 0;               // shared experts' fused hidden (0 = none)
  float eps = 1e-5f, theta = 10000.0f;
};

// tp, etp > 1: the local sizes of one (expert) tensor-parallel rank (config validation checks
// divisibility).
inline Dims make_dims(const Config& c, int64_t batch, int64_t tp = 1, int64_t etp = 1) {
  Dims d;
  d.B = batch;
  d.T = c.model.seq_len;
  d.N = d.B * d.T;
  d.D = c.model.d_model;
  d.V = c.model.vocab_size;
  d.L = c.model.n_layers;
  d.H = c.model.n_heads;
  d.KV = c.model.n_kv_heads;
  d.hd = c.model.head_dim();
  d.F = c.model.ffn_hidden;
  d.tp = tp;
  d.H /= tp;
  d.KV /= tp;
  d.F /= tp;
  d.E = c.moe.num_experts;
  d.K = c.moe.top_k;
  d.Fe = c.moe.expert_hidden / etp;
  d.etp = etp;
  d.Fs = c.moe.num_shared_experts * c.moe.expert_hidden;
  d.eps = float(c.model.norm_eps);
  d.theta = float(c.model.rope_theta);
  return d;
}

}  // namespace moe
