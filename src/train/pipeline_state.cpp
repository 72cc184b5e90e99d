#include "src/train/pipeline_state.h"

#include <algorithm>

#include "src/core/error.h"

namespace moe {

void gather_pipeline_params(const StageLayout& layout, ModelState& model, comm::Communicator& pp) {
  for (const ParamInfo& p : model.table.params())
    pp.broadcast(model.params.data() + p.offset, p.numel * int64_t(sizeof(float)), int(layout.owner_of(p.name)));
}

void gather_pipeline_state(const StageLayout& layout, ModelState& model, AdamW& stage_optim, AdamW& full,
                           comm::Communicator& pp) {
  const auto& ps = model.table.params();
  gather_pipeline_params(layout, model, pp);
  full.set_steps_done(stage_optim.steps_done());
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps[i];
    const int owner = int(layout.owner_of(p.name));
    const int64_t bytes = p.numel * int64_t(sizeof(float));
    if (!full.updates(i)) continue;
    if (pp.rank() == owner) {
      MOE_CHECK(stage_optim.updates(i), "stage optimizer lacks the moments of " + p.name);
      std::copy(stage_optim.m_of(i), stage_optim.m_of(i) + p.numel, full.m_of(i));
      std::copy(stage_optim.v_of(i), stage_optim.v_of(i) + p.numel, full.v_of(i));
    }
    pp.broadcast(full.m_of(i), bytes, owner);
    pp.broadcast(full.v_of(i), bytes, owner);
  }
}

}  // namespace moe
