// The rank grid of docs/distributed.md. world = PP x DP x TP with TP fastest, then DP, then PP.
// Within a pipeline stage the DP x TP ranks are regrouped for MoE layers as EDP x EP x ETP with
// ETP fastest, then EP, then EDP ("parallel folding"). The arithmetic is pure (testable without
// MPI); make_process_grid builds one Communicator per group with split().
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "src/comm/communicator.h"

namespace moe::comm {

struct GridShape {
  int pp = 1, dp = 1, tp = 1, ep = 1, etp = 1;
  int world() const { return pp * dp * tp; }
  int edp() const { return dp * tp / (ep * etp); }
};

struct GridCoord {
  int pp = 0, dp = 0, tp = 0;    // dense layout
  int edp = 0, ep = 0, etp = 0;  // MoE layout of the same rank
};

enum class Group { world, tp, dp, pp, ep, etp, edp };
const char* group_name(Group g);

// Throws ConfigError when the shape is not a valid grid (positive sizes, ep * etp | dp * tp).
void check_grid(const GridShape& s);
GridCoord grid_coord(const GridShape& s, int world_rank);
// The world ranks of the group `g` that contains world_rank, in group-rank order.
std::vector<int> group_ranks(const GridShape& s, int world_rank, Group g);

struct ProcessGrid {
  GridShape shape;
  GridCoord coord;
  Communicator* world = nullptr;  // not owned: the caller's world outlives the grid
  std::shared_ptr<Communicator> tp, dp, pp, ep, etp, edp;
  Communicator& get(Group g) const;
};

// Collective over `world` (world.size() must equal shape.world()).
ProcessGrid make_process_grid(Communicator& world, const GridShape& shape);

}  // namespace moe::comm
