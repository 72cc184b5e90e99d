#include "src/parallel/zero_optimizer.h"

#include <algorithm>

#include "kernels/ops.h"
#include "src/core/error.h"

namespace moe {

std::vector<ZeroPiece> zero_pieces(const ParamTable& table, const std::vector<bool>& frozen, const ZeroPartition& part) {
  const auto& ps = table.params();
  MOE_CHECK(frozen.empty() || frozen.size() == ps.size(), "ZeRO: one frozen flag per parameter");
  std::vector<ZeroPiece> pieces;
  for (const ZeroRange& z : part.ranges()) {
    const int64_t lo = z.begin, hi = z.begin + z.owned;
    for (size_t i = 0; i < ps.size(); ++i) {
      const bool updated = ps[i].trainable && (frozen.empty() || !frozen[i]);
      const int64_t a = std::max(lo, ps[i].offset), b = std::min(hi, ps[i].offset + ps[i].numel);
      if (updated && a < b) pieces.push_back({i, a, b - a, z.shard_off + (a - lo)});
    }
  }
  return pieces;
}

ZeroAdamW::ZeroAdamW(const ParamTable& table, const OptimConfig& cfg, const std::vector<bool>& frozen,
                     const ZeroPartition& part)
    : table_(table), cfg_(cfg), part_(part), pieces_(zero_pieces(table, frozen, part)) {
  // Moments span the whole shard (padding and non-updated floats stay zero) so that they move with
  // the same gathers as the parameters.
  m_.assign(size_t(part.shard_floats()), 0.0f);
  v_.assign(size_t(part.shard_floats()), 0.0f);
}

double ZeroAdamW::grad_sq_sum(const float* grads, bool sharded) const {
  double s = 0;
  for (const ZeroPiece& p : pieces_) s += ops::sum_squares(grads + (sharded ? p.shard_off : p.flat), p.n);
  return s;
}

double ZeroAdamW::grad_sq_sum(const float* grads, bool sharded, const std::function<bool(size_t)>& counts) const {
  double s = 0;
  for (const ZeroPiece& p : pieces_)
    if (counts(p.param)) s += ops::sum_squares(grads + (sharded ? p.shard_off : p.flat), p.n);
  return s;
}

void ZeroAdamW::step(float* params, const float* grads, bool sharded, double lr, double clip) {
  ++step_;
  for (const ZeroPiece& p : pieces_) {
    const ParamInfo& info = table_.params()[p.param];
    adamw_range(params + p.flat, grads + (sharded ? p.shard_off : p.flat), m_.data() + p.shard_off,
                v_.data() + p.shard_off, p.n, cfg_, lr, clip, info.weight_decay, step_, scaled_);
  }
}

void ZeroAdamW::to_full(AdamW& full, std::vector<float>& staging) const {
  const auto& ps = table_.params();
  std::vector<float> flat(size_t(table_.total()), 0.0f);
  for (int moment = 0; moment < 2; ++moment) {
    part_.place((moment == 0 ? m_ : v_).data(), flat.data());
    part_.gather(flat.data(), staging);
    for (size_t i = 0; i < ps.size(); ++i)
      if (full.updates(i))
        std::copy_n(flat.data() + ps[i].offset, ps[i].numel, moment == 0 ? full.m_of(i) : full.v_of(i));
  }
  full.set_steps_done(step_);
}

void ZeroAdamW::from_full(AdamW& full) {
  for (const ZeroPiece& p : pieces_) {
    const int64_t at = p.flat - table_.params()[p.param].offset;
    MOE_CHECK(full.updates(p.param), "ZeroAdamW::from_full: the full optimizer must update the same tensors");
    std::copy_n(full.m_of(p.param) + at, p.n, m_.data() + p.shard_off);
    std::copy_n(full.v_of(p.param) + at, p.n, v_.data() + p.shard_off);
  }
  step_ = full.steps_done();
}

}  // namespace moe
