#include "src/train/pipeline_state.h"

#include <algorithm>

#include "src/core/page_memory.h"

namespace moe {

void gather_pipeline_params(const StageLayout& layout, ModelState& model, comm::Communicator& pp) {
  for (const ParamInfo& p : model.table.params())
    pp.broadcast(model.params.data() + p.offset, p.numel * int64_t(sizeof(float)), int(layout.owner_of(p.name)));
}

void gather_pipeline_state(const StageLayout& layout, ModelState& model, AdamW& full, comm::Communicator& pp) {
  gather_pipeline_params(layout, model, pp);
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!full.updates(i)) continue;
    const int owner = int(layout.owner_of(ps[i].name));
    const int64_t bytes = ps[i].numel * int64_t(sizeof(float));
    pp.broadcast(full.m_of(i), bytes, owner);
    pp.broadcast(full.v_of(i), bytes, owner);
  }
}

void copy_moments(const ParamTable& table, AdamW& from, AdamW& to) {
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!from.updates(i) || !to.updates(i)) continue;
    std::copy_n(from.m_of(i), ps[i].numel, to.m_of(i));
    std::copy_n(from.v_of(i), ps[i].numel, to.v_of(i));
  }
  to.set_steps_done(from.steps_done());
}

void release_foreign(const ParamTable& table, const std::vector<bool>& foreign, float* buffer) {
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size(); ++i)
    if (i < foreign.size() && foreign[i]) release_floats(buffer + ps[i].offset, ps[i].numel);
}

void zero_own_grads(const ParamTable& table, const std::vector<bool>& foreign, float* grads) {
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size(); ++i)
    if (i >= foreign.size() || !foreign[i]) std::fill_n(grads + ps[i].offset, ps[i].numel, 0.0f);
}

}  // namespace moe
