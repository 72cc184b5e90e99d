// Router jitter (Switch Transformer): multiplicative noise on the router input while training.
// Element (global row, column) of step s in layer l draws from Philox keyed by the seed and the
// layer, counter (s, global element index): the same noise whatever the data-parallel layout.
#include <string>

#include "moe/router_parts.h"
#include "src/core/philox.h"

namespace moe::routing {

void jitter_forward(RouterState& r, const float* xn, const Dims& d, double eps, const RoutingContext& ctx) {
  const int64_t n = d.N * d.D;
  r.noise.resize(size_t(n));
  r.xr.resize(size_t(n));
  const uint64_t key = rng_key(ctx.seed, "layers." + std::to_string(ctx.layer) + ".moe.router.jitter");
  const uint64_t first = uint64_t(ctx.token_offset * d.D);
  const float lo = float(1.0 - eps), width = float(2.0 * eps);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = philox4x32(key, uint64_t(ctx.step), first + uint64_t(i)).v[0];
    const float u = float(bits >> 8) * (1.0f / 16777216.0f);  // [0, 1)
    r.noise[size_t(i)] = lo + width * u;
    r.xr[size_t(i)] = xn[i] * r.noise[size_t(i)];
  }
}

}  // namespace moe::routing
