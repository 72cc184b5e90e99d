// A parallel layout (the parallel.* keys the planner varies) and the enumeration of every valid
// one for a world size, under the same divisibility rules as the config (validate_layout).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/train/config.h"

namespace moe::plan {

struct Layout {
  int64_t dp = 1, tp = 1, pp = 1, ep = 1, etp = 1;
  int64_t zero_stage = 0;
  int64_t microbatches = 1;
  std::string recompute = "none";
  int64_t world() const { return dp * tp * pp; }
  int64_t edp() const { return dp * tp / (ep * etp); }  // expert-data-parallel group size
};

Layout layout_of(const Config& c);
Config with_layout(const Config& c, const Layout& l);
// "dp8 tp2 pp4 ep8 etp1 z1 mb8 rc=none"
std::string describe(const Layout& l);

struct EnumerateOptions {
  // Empty: every power of two that divides each replica's share of the batch (down to
  // micro-batches of one sequence).
  std::vector<int64_t> microbatches;
  std::vector<std::string> recompute = {"none", "attention", "moe", "block"};
  std::vector<int64_t> zero_stages = {0, 1, 2, 3};
};

// Every layout with dp * tp * pp == world that validate_layout accepts for `c`.
std::vector<Layout> enumerate_layouts(const Config& c, int64_t world, const EnumerateOptions& o = {});

}  // namespace moe::plan
