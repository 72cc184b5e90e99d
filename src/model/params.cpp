#include "src/model/params.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/core/philox.h"

namespace moe {

int ParamTable::add(const std::string& name, std::vector<int64_t> shape, InitKind init, bool weight_decay,
                    bool trainable) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  // Align each view to 16 floats so vector loads never straddle two parameters.
  int64_t offset = (total_ + 15) / 16 * 16;
  ShardSpec replicated;
  replicated.global_shape = shape;
  params_.push_back({name, std::move(shape), offset, n, init, weight_decay, trainable, std::move(replicated)});
  total_ = offset + n;
  return int(params_.size()) - 1;
}

int ParamTable::add_expert(const std::string& name, std::vector<int64_t> global_shape, int hidden_dim, InitKind init,
                           const ExpertShard& es) {
  const size_t h = size_t(hidden_dim);
  MOE_CHECK(es.size >= 1 && global_shape[0] % es.size == 0, name + ": experts do not divide over the ep group");
  MOE_CHECK(es.etp >= 1 && h < global_shape.size() && global_shape[h] % es.etp == 0,
            name + ": hidden units do not divide over the etp group");
  std::vector<int64_t> local = global_shape;
  local[0] = global_shape[0] / es.size;
  local[h] = global_shape[h] / es.etp;
  const int i = add(name, local, init);
  ShardSpec& sh = params_[size_t(i)].shard;
  sh.global_shape = std::move(global_shape);
  sh.expert = true;
  if (es.size > 1) {
    sh.split_dim = 0;
    sh.group = "ep";
    sh.offset = es.rank * local[0];
  }
  if (es.etp > 1) {
    sh.etp_dim = hidden_dim;
    sh.etp_offset = es.etp_rank * local[h];
  }
  return i;
}

int ParamTable::add_tp_split(const std::string& name, std::vector<int64_t> global_shape, int split_dim,
                             InitKind init, const TensorShard& ts) {
  const size_t dim = size_t(split_dim);
  MOE_CHECK(ts.size >= 1 && dim < global_shape.size() && global_shape[dim] % ts.size == 0,
            name + ": does not divide over the tp group");
  std::vector<int64_t> local = global_shape;
  local[dim] = global_shape[dim] / ts.size;
  const int i = add(name, local, init);
  if (ts.size > 1) {
    ShardSpec& sh = params_[size_t(i)].shard;
    sh.global_shape = std::move(global_shape);
    sh.split_dim = split_dim;
    sh.group = "tp";
    sh.offset = ts.rank * local[dim];
  }
  return i;
}

int ParamTable::index_of(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return int(i);
  return -1;
}

ParamTable build_param_table(const Config& c, const ExpertShard& es, const TensorShard& ts) {
  const auto& m = c.model;
  const auto& e = c.moe;
  const int64_t D = m.d_model, hd = m.head_dim(), V = m.vocab_size;
  ParamTable t;
  t.add("tok_embeddings.weight", {V, D}, InitKind::normal);
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    t.add(p + "attention_norm.weight", {D}, InitKind::ones, false);
    // Column-parallel q/k/v (output rows = whole heads), row-parallel wo (input columns).
    t.add_tp_split(p + "attention.wq.weight", {m.n_heads * hd, D}, 0, InitKind::normal, ts);
    t.add_tp_split(p + "attention.wk.weight", {m.n_kv_heads * hd, D}, 0, InitKind::normal, ts);
    t.add_tp_split(p + "attention.wv.weight", {m.n_kv_heads * hd, D}, 0, InitKind::normal, ts);
    t.add_tp_split(p + "attention.wo.weight", {D, m.n_heads * hd}, 1, InitKind::normal, ts);
    t.add(p + "ffn_norm.weight", {D}, InitKind::ones, false);
    if (!m.is_moe_layer(i)) {
      t.add_tp_split(p + "feed_forward.w1.weight", {m.ffn_hidden, D}, 0, InitKind::normal, ts);
      t.add_tp_split(p + "feed_forward.w3.weight", {m.ffn_hidden, D}, 0, InitKind::normal, ts);
      t.add_tp_split(p + "feed_forward.w2.weight", {D, m.ffn_hidden}, 1, InitKind::normal, ts);
      continue;
    }
    const int64_t E = e.num_experts, Fe = e.expert_hidden;
    t.add(p + "moe.router.weight", {E, D}, InitKind::normal);
    t.add(p + "moe.router.bias", {E}, InitKind::zeros, false, /*trainable=*/false);
    t.add_expert(p + "moe.experts.w1", {E, Fe, D}, 1, InitKind::normal, es);
    t.add_expert(p + "moe.experts.w3", {E, Fe, D}, 1, InitKind::normal, es);
    t.add_expert(p + "moe.experts.w2", {E, D, Fe}, 2, InitKind::normal, es);
    if (e.num_shared_experts > 0) {
      const int64_t Fs = e.num_shared_experts * Fe;
      t.add(p + "moe.shared.w1.weight", {Fs, D}, InitKind::normal);
      t.add(p + "moe.shared.w3.weight", {Fs, D}, InitKind::normal);
      t.add(p + "moe.shared.w2.weight", {D, Fs}, InitKind::normal);
    }
  }
  t.add("norm.weight", {D}, InitKind::ones, false);
  t.add("output.weight", {V, D}, InitKind::normal);
  return t;
}

ModelParams bind_params(const Config& c, const ParamTable& table, float* base) {
  auto at = [&](const std::string& name) -> float* {
    int i = table.index_of(name);
    return i < 0 ? nullptr : base + table.params()[size_t(i)].offset;
  };
  ModelParams mp{};
  mp.tok_embeddings = at("tok_embeddings.weight");
  mp.norm = at("norm.weight");
  mp.output = at("output.weight");
  for (int64_t i = 0; i < c.model.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    BlockParams b{};
    b.attention_norm = at(p + "attention_norm.weight");
    b.wq = at(p + "attention.wq.weight");
    b.wk = at(p + "attention.wk.weight");
    b.wv = at(p + "attention.wv.weight");
    b.wo = at(p + "attention.wo.weight");
    b.ffn_norm = at(p + "ffn_norm.weight");
    b.w1 = at(p + "feed_forward.w1.weight");
    b.w3 = at(p + "feed_forward.w3.weight");
    b.w2 = at(p + "feed_forward.w2.weight");
    b.router = at(p + "moe.router.weight");
    b.router_bias = at(p + "moe.router.bias");
    b.experts_w1 = at(p + "moe.experts.w1");
    b.experts_w3 = at(p + "moe.experts.w3");
    b.experts_w2 = at(p + "moe.experts.w2");
    b.shared_w1 = at(p + "moe.shared.w1.weight");
    b.shared_w3 = at(p + "moe.shared.w3.weight");
    b.shared_w2 = at(p + "moe.shared.w2.weight");
    MOE_CHECK(b.wq && b.ffn_norm, "block " + std::to_string(i) + " is missing parameters");
    mp.blocks.push_back(b);
  }
  return mp;
}

std::vector<int64_t> shard_start(const ParamInfo& p) {
  std::vector<int64_t> start(p.shape.size(), 0);
  if (p.shard.split_dim >= 0) start[size_t(p.shard.split_dim)] = p.shard.offset;
  if (p.shard.etp_dim >= 0) start[size_t(p.shard.etp_dim)] = p.shard.etp_offset;
  return start;
}

namespace {

// Index in the global tensor of element i of this rank's slice (start: shard_start(p)).
int64_t global_index(const ParamInfo& p, const std::vector<int64_t>& start, int64_t i) {
  if (!p.shard.split()) return i;
  int64_t g = 0, stride = 1;
  for (size_t d = p.shape.size(); d-- > 0;) {
    g += (i % p.shape[d] + start[d]) * stride;
    i /= p.shape[d];
    stride *= p.shard.global_shape[d];
  }
  return g;
}

}  // namespace

int64_t global_index(const ParamInfo& p, int64_t i) { return global_index(p, shard_start(p), i); }

namespace {

// Floats [lo, hi) of tensor p (x: its first float), as the whole-tensor init gives them.
void init_tensor_part(const ParamInfo& p, float* x, uint64_t seed, int64_t lo, int64_t hi) {
  switch (p.init) {
    case InitKind::ones:
      for (int64_t i = lo; i < hi; ++i) x[i] = 1.0f;
      break;
    case InitKind::zeros:
      for (int64_t i = lo; i < hi; ++i) x[i] = 0.0f;
      break;
    case InitKind::normal: {
      const uint64_t key = rng_key(seed, p.name);
      const std::vector<int64_t> start = shard_start(p);
      for (int64_t i = lo; i < hi; ++i) x[i] = 0.02f * philox_normal(key, uint64_t(global_index(p, start, i)));
      break;
    }
  }
}

}  // namespace

void init_params(const ParamTable& table, float* data, uint64_t seed) {
  for (const auto& p : table.params()) init_tensor_part(p, data + p.offset, seed, 0, p.numel);
}

void init_params_ranges(const ParamTable& table, float* data, uint64_t seed,
                        const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  for (const auto& [begin, end] : ranges)
    for (const auto& p : table.params()) {
      const int64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + p.numel);
      if (lo < hi) init_tensor_part(p, data + p.offset, seed, lo - p.offset, hi - p.offset);
    }
}

}  // namespace moe
