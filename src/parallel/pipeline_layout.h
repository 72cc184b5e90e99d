// Which pipeline stage owns which blocks and parameters. Virtual stages own contiguous blocks (an
// even split, or parallel.pp_layout block counts); the first also owns the token embeddings, the
// last the final norm and the output head (and so the loss). With parallel.virtual_stages = v
// there are pp v virtual stages and virtual stage k runs on pp rank k % pp as its chunk k / pp
// (interleaved 1F1B); with v = 1 virtual stages are the ranks' stages.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/model/params.h"
#include "src/train/config.h"

namespace moe {

struct StageLayout {
  std::vector<int64_t> first;  // pp v + 1 entries: virtual stage k owns blocks [first[k], first[k + 1])
  int64_t num_layers = 0;
  int64_t ranks = 1;           // pp

  int64_t stages() const { return int64_t(first.size()) - 1; }  // virtual stages, pp v
  int64_t begin(int64_t k) const { return first[size_t(k)]; }
  int64_t end(int64_t k) const { return first[size_t(k) + 1]; }
  int64_t stage_of_block(int64_t i) const;  // the virtual stage
  // The pp rank owning a parameter by its logical name (tok_embeddings: the first virtual stage's,
  // layers.i: the block's, norm and output: the last virtual stage's).
  int64_t owner_of(const std::string& name) const;
};

// From parallel.pp, parallel.virtual_stages and parallel.pp_layout (validated by the config checks).
StageLayout make_stage_layout(const Config& c);

// One entry per table parameter: true when `stage` does not own it (it is neither computed,
// reduced, clipped nor updated there).
std::vector<bool> foreign_params(const StageLayout& layout, const ParamTable& table, int64_t stage);

}  // namespace moe
