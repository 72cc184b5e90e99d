// Validation loss exactly as DESIGN.md defines it: the valid split read in order, unshuffled;
// sequence j = tokens[j*T : j*T+T+1]; batches of train.batch_size sequences; mean token CE (no aux).
#pragma once
#include <cstdint>

#include "src/comm/communicator.h"
#include "src/model/params.h"
#include "src/model/transformer.h"
#include "src/train/config.h"

namespace moe {

struct EvalResult {
  double loss = 0;   // mean token cross-entropy
  double ppl = 0;    // exp(loss)
  int64_t tokens = 0;
};

// batches <= 0: every full batch of the split. Ranks of `dp` split each batch's rows. Inside a
// training run p is this rank's shard: make_dispatcher gives the MoE layers the run's dispatchers
// (expert parallelism), tp and etp its (expert) tensor-parallel groups, as for the trainer's Transformer.
EvalResult evaluate(const Config& c, const ModelParams& p, int64_t batches, comm::Communicator& dp,
                    const DispatcherFactory& make_dispatcher = {}, comm::Communicator* tp = nullptr,
                    comm::Communicator* etp = nullptr);

}  // namespace moe
