// Expert choice (Zhou et al. 2022): each expert takes the C tokens of the global batch with the
// highest softmax probability for it, C = ceil(cf * tokens * top_k / E) (cf = 1 when
// capacity_factor is 0). Tokens no expert takes pass through the residual only.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "moe/router_parts.h"
#include "src/core/error.h"

namespace moe::routing {
namespace {

// Probabilities are >= 0, so their IEEE bits order like their values.
uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

}  // namespace

void select_expert_choice(RouterState& r, const Dims& d, const MoeConfig& cfg, const SumReducer& reduce_sum) {
  const int64_t N = d.N, E = d.E;
  std::vector<double> buf{double(N)};
  if (reduce_sum) reduce_sum(buf);
  const double tokens = buf[0];
  const double cf = cfg.capacity_factor > 0 ? cfg.capacity_factor : 1.0;
  r.ec_capacity = int64_t(std::ceil(cf * tokens * double(d.K) / double(E)));
  const double want = std::min(double(r.ec_capacity), tokens);

  // Per expert, the largest threshold tau_e (as float bits) with #{t : p[t,e] >= tau_e} >= C over
  // the global batch; lo always satisfies it, hi never does. Every rank runs the same iterations.
  std::vector<uint32_t> lo(size_t(E), 0u), hi(size_t(E), bits_of(1.0f) + 1u);
  std::vector<double> count(static_cast<size_t>(E));
  for (int iter = 0; iter < 32; ++iter) {
    std::fill(count.begin(), count.end(), 0.0);
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < E; ++e) {
        const uint32_t mid = lo[size_t(e)] + (hi[size_t(e)] - lo[size_t(e)]) / 2;
        count[size_t(e)] += bits_of(r.scores[size_t(t * E + e)]) >= mid ? 1.0 : 0.0;
      }
    if (reduce_sum) reduce_sum(count);
    bool done = true;
    for (int64_t e = 0; e < E; ++e) {
      const uint32_t mid = lo[size_t(e)] + (hi[size_t(e)] - lo[size_t(e)]) / 2;
      (count[size_t(e)] >= want ? lo : hi)[size_t(e)] = mid;
      done = done && hi[size_t(e)] - lo[size_t(e)] <= 1;
    }
    if (done) break;
  }
  // Every token at or above the threshold: ties at the C-th value all go in (layout invariant).
  r.ec_rows.clear();
  r.ec_offsets.assign(size_t(E + 1), 0);
  r.weights.clear();
  std::vector<char> routed(size_t(N), 0);
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t t = 0; t < N; ++t) {
      const float p = r.scores[size_t(t * E + e)];
      if (bits_of(p) < lo[size_t(e)]) continue;
      r.ec_rows.push_back(int32_t(t));
      r.weights.push_back(p * float(cfg.router_scale));
      routed[size_t(t)] = 1;
    }
    r.ec_offsets[size_t(e + 1)] = int64_t(r.ec_rows.size());
  }
  r.ec_unrouted = int64_t(std::count(routed.begin(), routed.end(), 0));
}

void expert_choice_backward(RouterState& r, const float* dweights, const Dims& d, const MoeConfig& cfg) {
  const float scale = float(cfg.router_scale);
  for (int64_t e = 0; e < d.E; ++e)
    for (int64_t i = r.ec_offsets[size_t(e)]; i < r.ec_offsets[size_t(e + 1)]; ++i)
      r.dscores[size_t(int64_t(r.ec_rows[size_t(i)]) * d.E + e)] += scale * dweights[i];
}

}  // namespace moe::routing
