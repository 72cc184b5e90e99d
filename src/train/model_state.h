// Parameters and gradients of the whole model in two flat buffers with named views. Under expert
// parallelism the buffers hold only this rank's experts (ExpertShard). The buffers start zero and
// untouched (src/core/page_vector.h): under ZeRO a rank writes, so holds, only its owned ranges.
#pragma once
#include <vector>

#include "src/core/page_vector.h"
#include "src/model/params.h"

namespace moe {

struct ModelState {
  ParamTable table;
  PageVector params, grads;
  ModelParams p, g;  // views into params / grads

  explicit ModelState(const Config& c, const ExpertShard& es = {}, const TensorShard& ts = {})
      : table(build_param_table(c, es, ts)),
        params(size_t(table.total())),
        grads(size_t(table.total())),
        p(bind_params(c, table, params.data())),
        g(bind_params(c, table, grads.data())) {}
  ModelState(const ModelState&) = delete;
  ModelState& operator=(const ModelState&) = delete;
};

}  // namespace moe
