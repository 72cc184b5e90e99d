// Which pipeline stage owns which blocks and parameters. Stages own contiguous blocks (an even
// split, or parallel.pp_layout block counts); the first stage also owns the token embeddings, the
// last the final norm and the output head (and so the loss).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/model/params.h"
#include "src/train/config.h"

namespace moe {

struct StageLayout {
  std::vector<int64_t> first;  // pp + 1 entries: stage s owns blocks [first[s], first[s + 1])
  int64_t num_layers = 0;

  int64_t stages() const { return int64_t(first.size()) - 1; }
  int64_t begin(int64_t s) const { return first[size_t(s)]; }
  int64_t end(int64_t s) const { return first[size_t(s) + 1]; }
  int64_t stage_of_block(int64_t i) const;
  // Owner of a parameter by its logical name (tok_embeddings: 0, layers.i: the block's stage,
  // norm and output: the last stage).
  int64_t owner_of(const std::string& name) const;
};

// From parallel.pp and parallel.pp_layout (already validated by the config checks).
StageLayout make_stage_layout(const Config& c);

// One entry per table parameter: true when `stage` does not own it (it is neither computed,
// reduced, clipped nor updated there).
std::vector<bool> foreign_params(const StageLayout& layout, const ParamTable& table, int64_t stage);

}  // namespace moe
