// The diagnostic for a non-finite loss or gradient norm. Only on that failure path (the normal
// step pays nothing), it replays the step's forward layer by layer with the same ops, checking
// each named activation in order, agrees with every rank on the earliest one, and lists the
// parameters and gradients that hold non-finite values. docs/reliability.md describes it.
#pragma once
#include <cstdint>
#include <string>

#include "moe/router.h"
#include "src/comm/communicator.h"
#include "src/model/transformer.h"
#include "src/train/model_state.h"

namespace moe {

struct NonfiniteStep {
  int64_t step = 0;            // the failing step, counted from 1
  double loss = 0, grad_norm = 0;
  const int32_t* tokens = nullptr;  // this rank's (local_rows, T+1) batch of the step
  int64_t local_rows = 0;
  int64_t token_offset = 0;    // this rank's first global token (routing context)
};

// Collective over `world` (every rank calls it: the loss and gradient norm are global values).
// tp, etp: the (expert) tensor-parallel groups the model's shard was built for (null = none).
// Returns the message of the error the trainer raises.
std::string describe_nonfinite(const Config& c, const NonfiniteStep& s, const ModelState& model,
                               const DispatcherFactory& make_dispatcher, const SumReducer& reduce_sum,
                               comm::Communicator& world, comm::Communicator* tp = nullptr,
                               comm::Communicator* etp = nullptr);

}  // namespace moe
