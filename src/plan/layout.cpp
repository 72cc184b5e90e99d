#include "src/plan/layout.h"

#include "src/core/error.h"

namespace moe::plan {
namespace {

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

bool valid(const Config& c, const Layout& l) {
  try {
    validate_layout(with_layout(c, l), l.world());
    return true;
  } catch (const ConfigError&) {
    return false;
  }
}

}  // namespace

Layout layout_of(const Config& c) {
  const auto& p = c.parallel;
  return Layout{p.dp, p.tp, p.pp, p.ep, p.etp, p.zero_stage, p.microbatches, p.recompute};
}

Config with_layout(const Config& c, const Layout& l) {
  Config out = c;
  auto& p = out.parallel;
  p.dp = l.dp;
  p.tp = l.tp;
  p.pp = l.pp;
  p.ep = l.ep;
  p.etp = l.etp;
  p.zero_stage = l.zero_stage;
  p.microbatches = l.microbatches;
  p.recompute = l.recompute;
  return out;
}

std::string describe(const Layout& l) {
  return "dp" + std::to_string(l.dp) + " tp" + std::to_string(l.tp) + " pp" + std::to_string(l.pp) + " ep" +
         std::to_string(l.ep) + " etp" + std::to_string(l.etp) + " z" + std::to_string(l.zero_stage) + " mb" +
         std::to_string(l.microbatches) + " rc=" + l.recompute;
}

std::vector<Layout> enumerate_layouts(const Config& c, int64_t world, const EnumerateOptions& o) {
  MOE_CHECK(world >= 1, "world size must be positive");
  std::vector<Layout> out;
  for (int64_t pp : divisors(world)) {
    for (int64_t tp : divisors(world / pp)) {
      const int64_t dp = world / pp / tp;
      for (int64_t ep : divisors(dp * tp)) {
        for (int64_t etp : divisors(dp * tp / ep)) {
          // The trainer's expert tensor parallelism: over the tp group, or over dp ranks with tp 1.
          if (etp != 1 && etp != tp && tp != 1) continue;
          Layout base{dp, tp, pp, ep, etp, 0, 1, "none"};
          if (!valid(c, base)) continue;  // shape divisibility does not depend on the rest
          std::vector<int64_t> mbs = o.microbatches;
          if (mbs.empty())
            for (int64_t mb = 1; mb <= c.train.batch_size / dp; mb *= 2) mbs.push_back(mb);
          for (int64_t mb : mbs) {
            // Only the rest of the layout varies below; the batch split is the one check left.
            if (c.train.batch_size % (dp * mb) != 0) continue;
            for (int64_t z : o.zero_stages) {
              for (const std::string& rc : o.recompute) {
                Layout l{dp, tp, pp, ep, etp, z, mb, rc};
                // Recomputing the MoE part only differs from none when there are MoE layers.
                if (rc == "moe" && c.model.moe_every == 0) continue;
                if (valid(c, l)) out.push_back(l);
              }
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace moe::plan
