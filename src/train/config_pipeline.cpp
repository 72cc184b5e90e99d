// Config checks of pipeline parallelism (parallel.pp, pp_layout, virtual_stages, microbatches).
#include <string>

#include "src/train/config_schema.h"

namespace moe::config_detail {

void check_pipeline_layout(const Config& c, const Origin& where) {
  const ParallelConfig& p = c.parallel;
  const int64_t L = c.model.n_layers, v = p.virtual_stages, V = p.pp * v;
  const auto str = [](int64_t n) { return std::to_string(n); };
  if (v > 1) {
    if (p.pp == 1)
      fail("parallel.virtual_stages", str(v) + " needs pipeline stages", where,
           "set parallel.pp > 1 or virtual_stages: 1");
    if (p.schedule != "1f1b")
      fail("parallel.virtual_stages", str(v) + " needs parallel.schedule 1f1b (interleaved 1F1B)", where,
           "set schedule: 1f1b or virtual_stages: 1");
    if (p.microbatches % p.pp != 0)
      fail("parallel.microbatches", str(p.microbatches) + " is not a multiple of parallel.pp = " + str(p.pp) +
                                        " (interleaved 1F1B with parallel.virtual_stages = " + str(v) + ")",
           where, "use a multiple of pp micro-batches, or virtual_stages: 1");
  }
  const std::string stages = v > 1 ? "parallel.pp * parallel.virtual_stages" : "parallel.pp";
  if (p.pp_layout.empty()) {
    if (L % V != 0)
      fail("model.n_layers", str(L) + " is not divisible by " + stages + " = " + str(V), where,
           "choose n_layers divisible by that, or give the blocks per stage in parallel.pp_layout (e.g. [1, 3])");
    return;
  }
  if (int64_t(p.pp_layout.size()) != V)
    fail("parallel.pp_layout", "lists " + str(int64_t(p.pp_layout.size())) + " stages but " + stages + " = " + str(V),
         where, "give one block count per (virtual) pipeline stage");
  int64_t sum = 0;
  for (int64_t n : p.pp_layout) sum += n;
  if (sum != L)
    fail("parallel.pp_layout", "counts " + str(sum) + " blocks but model.n_layers = " + str(L), where,
         "make the block counts add up to n_layers");
}

}  // namespace moe::config_detail
