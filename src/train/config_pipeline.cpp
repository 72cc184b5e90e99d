// Config checks of pipeline parallelism (parallel.pp, parallel.pp_layout, parallel.microbatches).
#include <string>

#include "src/train/config_schema.h"

namespace moe::config_detail {

void check_pipeline_layout(const Config& c, const Origin& where) {
  const ParallelConfig& p = c.parallel;
  const int64_t L = c.model.n_layers;
  const auto str = [](int64_t v) { return std::to_string(v); };
  if (p.pp_layout.empty()) {
    if (L % p.pp != 0)
      fail("model.n_layers", str(L) + " is not divisible by parallel.pp = " + str(p.pp), where,
           "choose n_layers divisible by pp, or give the blocks per stage in parallel.pp_layout (e.g. [1, 3])");
    return;
  }
  if (int64_t(p.pp_layout.size()) != p.pp)
    fail("parallel.pp_layout", "lists " + str(int64_t(p.pp_layout.size())) + " stages but parallel.pp = " + str(p.pp),
         where, "give one block count per pipeline stage");
  int64_t sum = 0;
  for (int64_t n : p.pp_layout) sum += n;
  if (sum != L)
    fail("parallel.pp_layout", "counts " + str(sum) + " blocks but model.n_layers = " + str(L), where,
         "make the block counts add up to n_layers");
}

}  // namespace moe::config_detail
