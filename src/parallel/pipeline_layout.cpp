#include "src/parallel/pipeline_layout.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/parallel/grad_buckets.h"

namespace moe {

int64_t StageLayout::stage_of_block(int64_t i) const {
  MOE_CHECK(i >= 0 && i < num_layers, "block index out of range");
  const auto it = std::upper_bound(first.begin(), first.end(), i);
  return int64_t(it - first.begin()) - 1;
}

int64_t StageLayout::owner_of(const std::string& name) const {
  const int64_t at = grad_stage_of(name, num_layers);
  if (at < 0) return 0;
  if (at >= num_layers) return (stages() - 1) % ranks;
  return stage_of_block(at) % ranks;
}

StageLayout make_stage_layout(const Config& c) {
  const int64_t V = c.parallel.pp * c.parallel.virtual_stages, L = c.model.n_layers;
  StageLayout s;
  s.num_layers = L;
  s.ranks = c.parallel.pp;
  s.first.push_back(0);
  const auto& counts = c.parallel.pp_layout;
  MOE_CHECK(counts.empty() || int64_t(counts.size()) == V, "parallel.pp_layout not validated");
  for (int64_t k = 0; k < V; ++k) s.first.push_back(s.first.back() + (counts.empty() ? L / V : counts[size_t(k)]));
  MOE_CHECK(s.first.back() == L, "pipeline stages do not cover the model's blocks");
  return s;
}

std::vector<bool> foreign_params(const StageLayout& layout, const ParamTable& table, int64_t stage) {
  std::vector<bool> out;
  for (const ParamInfo& p : table.params()) out.push_back(layout.owner_of(p.name) != stage);
  return out;
}

}  // namespace moe
