#include "src/comm/process_grid.h"

#include "src/core/error.h"

namespace moe::comm {

const char* group_name(Group g) {
  switch (g) {
    case Group::world: return "world";
    case Group::tp: return "tp";
    case Group::dp: return "dp";
    case Group::pp: return "pp";
    case Group::ep: return "ep";
    case Group::etp: return "etp";
    case Group::edp: return "edp";
  }
  return "?";
}

void check_grid(const GridShape& s) {
  if (s.pp < 1 || s.dp < 1 || s.tp < 1 || s.ep < 1 || s.etp < 1)
    throw ConfigError("parallel: pp, dp, tp, ep and etp must all be >= 1");
  if ((s.dp * s.tp) % (s.ep * s.etp) != 0)
    throw ConfigError("parallel.ep * parallel.etp = " + std::to_string(s.ep * s.etp) +
                      " must divide parallel.dp * parallel.tp = " + std::to_string(s.dp * s.tp) +
                      " (MoE layers regroup a stage's dp x tp ranks as edp x ep x etp)");
}

GridCoord grid_coord(const GridShape& s, int world_rank) {
  MOE_CHECK(world_rank >= 0 && world_rank < s.world(), "rank " + std::to_string(world_rank) + " outside the grid");
  GridCoord c;
  c.tp = world_rank % s.tp;
  c.dp = (world_rank / s.tp) % s.dp;
  c.pp = world_rank / (s.tp * s.dp);
  const int local = world_rank % (s.tp * s.dp);  // position within the stage
  c.etp = local % s.etp;
  c.ep = (local / s.etp) % s.ep;
  c.edp = local / (s.etp * s.ep);
  return c;
}

namespace {

int dense_rank(const GridShape& s, int pp, int dp, int tp) { return (pp * s.dp + dp) * s.tp + tp; }
int moe_rank(const GridShape& s, int pp, int edp, int ep, int etp) {
  return pp * s.dp * s.tp + (edp * s.ep + ep) * s.etp + etp;
}

}  // namespace

std::vector<int> group_ranks(const GridShape& s, int world_rank, Group g) {
  const GridCoord c = grid_coord(s, world_rank);
  std::vector<int> out;
  switch (g) {
    case Group::world:
      for (int r = 0; r < s.world(); ++r) out.push_back(r);
      break;
    case Group::tp:
      for (int i = 0; i < s.tp; ++i) out.push_back(dense_rank(s, c.pp, c.dp, i));
      break;
    case Group::dp:
      for (int i = 0; i < s.dp; ++i) out.push_back(dense_rank(s, c.pp, i, c.tp));
      break;
    case Group::pp:
      for (int i = 0; i < s.pp; ++i) out.push_back(dense_rank(s, i, c.dp, c.tp));
      break;
    case Group::ep:
      for (int i = 0; i < s.ep; ++i) out.push_back(moe_rank(s, c.pp, c.edp, i, c.etp));
      break;
    case Group::etp:
      for (int i = 0; i < s.etp; ++i) out.push_back(moe_rank(s, c.pp, c.edp, c.ep, i));
      break;
    case Group::edp:
      for (int i = 0; i < s.edp(); ++i) out.push_back(moe_rank(s, c.pp, i, c.ep, c.etp));
      break;
  }
  return out;
}

Communicator& ProcessGrid::get(Group g) const {
  switch (g) {
    case Group::world: return *world;
    case Group::tp: return *tp;
    case Group::dp: return *dp;
    case Group::pp: return *pp;
    case Group::ep: return *ep;
    case Group::etp: return *etp;
    case Group::edp: return *edp;
  }
  MOE_CHECK(false, "unknown group");
  return *world;
}

ProcessGrid make_process_grid(Communicator& world, const GridShape& shape) {
  check_grid(shape);
  MOE_CHECK(world.size() == shape.world(), "grid of " + std::to_string(shape.world()) + " ranks on a world of " +
                                                std::to_string(world.size()));
  ProcessGrid g;
  g.shape = shape;
  g.coord = grid_coord(shape, world.rank());
  g.world = &world;
  // One split per group kind, in a fixed order on every rank. A group's color is its first
  // (lowest) world rank; the key is the position in the group.
  auto make = [&](Group kind) {
    const std::vector<int> ranks = group_ranks(shape, world.rank(), kind);
    int pos = 0;
    while (ranks[size_t(pos)] != world.rank()) ++pos;
    auto c = world.split(ranks[0], pos, group_name(kind));
    MOE_CHECK(c->rank() == pos && c->size() == int(ranks.size()), std::string("group ") + group_name(kind));
    return c;
  };
  g.tp = make(Group::tp);
  g.dp = make(Group::dp);
  g.pp = make(Group::pp);
  g.ep = make(Group::ep);
  g.etp = make(Group::etp);
  g.edp = make(Group::edp);
  return g;
}

}  // namespace moe::comm
