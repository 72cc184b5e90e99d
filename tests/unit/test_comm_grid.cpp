// Process grid rank arithmetic (no MPI) and its construction over an in-process group.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "src/comm/process_grid.h"
#include "src/comm/thread_communicator.h"
#include "src/core/error.h"

namespace moe::comm {
namespace {

const Group kGroups[] = {Group::tp, Group::dp, Group::pp, Group::ep, Group::etp, Group::edp};

int group_size(const GridShape& s, Group g) {
  switch (g) {
    case Group::tp: return s.tp;
    case Group::dp: return s.dp;
    case Group::pp: return s.pp;
    case Group::ep: return s.ep;
    case Group::etp: return s.etp;
    case Group::edp: return s.edp();
    case Group::world: return s.world();
  }
  return 0;
}

// Every kind of group partitions the world: each rank is in exactly one group of each kind,
// every member computes the same group, and the rank's position in it is its coordinate.
void check_partitions(const GridShape& s) {
  for (Group g : kGroups) {
    std::set<std::vector<int>> groups;
    for (int r = 0; r < s.world(); ++r) {
      const std::vector<int> ranks = group_ranks(s, r, g);
      ASSERT_EQ(int(ranks.size()), group_size(s, g)) << group_name(g);
      EXPECT_NE(std::find(ranks.begin(), ranks.end(), r), ranks.end()) << group_name(g) << " of rank " << r;
      for (int m : ranks) EXPECT_EQ(group_ranks(s, m, g), ranks) << group_name(g) << " of rank " << r;
      groups.insert(ranks);
    }
    std::set<int> covered;
    for (const auto& grp : groups) covered.insert(grp.begin(), grp.end());
    EXPECT_EQ(int(groups.size()) * group_size(s, g), s.world()) << group_name(g);  // disjoint
    EXPECT_EQ(int(covered.size()), s.world()) << group_name(g);
  }
  for (int r = 0; r < s.world(); ++r) {
    const GridCoord c = grid_coord(s, r);
    EXPECT_EQ(group_ranks(s, r, Group::ep)[size_t(c.ep)], r);
    EXPECT_EQ(group_ranks(s, r, Group::edp)[size_t(c.edp)], r);
    EXPECT_EQ(group_ranks(s, r, Group::dp)[size_t(c.dp)], r);
    EXPECT_EQ(group_ranks(s, r, Group::pp)[size_t(c.pp)], r);
    // ep and edp groups of one stage never leave it
    for (int m : group_ranks(s, r, Group::ep)) EXPECT_EQ(grid_coord(s, m).pp, c.pp);
  }
}

TEST(CommGrid, Pp2Dp2Tp2Ep2) {
  const GridShape s{2, 2, 2, 2, 1};
  EXPECT_EQ(s.edp(), 2);
  const GridCoord c = grid_coord(s, 5);  // 5 = pp 1, dp 0, tp 1
  EXPECT_EQ(c.pp, 1);
  EXPECT_EQ(c.dp, 0);
  EXPECT_EQ(c.tp, 1);
  EXPECT_EQ(c.etp, 0);
  EXPECT_EQ(c.ep, 1);
  EXPECT_EQ(c.edp, 0);
  EXPECT_EQ(group_ranks(s, 5, Group::tp), (std::vector<int>{4, 5}));
  EXPECT_EQ(group_ranks(s, 5, Group::dp), (std::vector<int>{5, 7}));
  EXPECT_EQ(group_ranks(s, 5, Group::pp), (std::vector<int>{1, 5}));
  EXPECT_EQ(group_ranks(s, 5, Group::ep), (std::vector<int>{4, 5}));
  EXPECT_EQ(group_ranks(s, 5, Group::edp), (std::vector<int>{5, 7}));
  EXPECT_EQ(group_ranks(s, 5, Group::etp), (std::vector<int>{5}));
  check_partitions(s);
}

TEST(CommGrid, FoldedShapes) {
  // dp 4, ep 2: experts pair neighbours, replicas stride over them
  const GridShape a{1, 4, 1, 2, 1};
  EXPECT_EQ(group_ranks(a, 2, Group::ep), (std::vector<int>{2, 3}));
  EXPECT_EQ(group_ranks(a, 2, Group::edp), (std::vector<int>{0, 2}));
  // tp 2 x dp 2 regrouped as ep 2 x etp 2 (edp 1): etp fastest
  const GridShape b{1, 2, 2, 2, 2};
  EXPECT_EQ(group_ranks(b, 3, Group::etp), (std::vector<int>{2, 3}));
  EXPECT_EQ(group_ranks(b, 3, Group::ep), (std::vector<int>{1, 3}));
  EXPECT_EQ(group_ranks(b, 3, Group::edp), (std::vector<int>{3}));
  for (const GridShape& s : {a, b, GridShape{1, 1, 1, 1, 1}, GridShape{2, 4, 1, 4, 1}, GridShape{3, 2, 2, 1, 2},
                             GridShape{2, 4, 2, 2, 2}, GridShape{1, 8, 1, 8, 1}})
    check_partitions(s);
}

TEST(CommGrid, RejectsUnfoldableShape) {
  EXPECT_THROW(check_grid(GridShape{1, 2, 1, 4, 1}), ConfigError);
  EXPECT_THROW(check_grid(GridShape{1, 0, 1, 1, 1}), ConfigError);
  EXPECT_NO_THROW(check_grid(GridShape{1, 4, 1, 2, 1}));
}

TEST(CommGrid, BuildsGroupsOverThreads) {
  const GridShape s{2, 2, 2, 2, 1};
  auto world = make_thread_group(s.world(), "world");
  std::vector<std::thread> threads;
  std::vector<int> ep_sum(size_t(s.world())), edp_sum(size_t(s.world()));
  for (int r = 0; r < s.world(); ++r)
    threads.emplace_back([&, r] {
      ProcessGrid g = make_process_grid(*world[size_t(r)], s);
      int64_t v = r;
      g.ep->allreduce_sum(&v, 1);
      ep_sum[size_t(r)] = int(v);
      v = r;
      g.edp->allreduce_sum(&v, 1);
      edp_sum[size_t(r)] = int(v);
      EXPECT_EQ(g.ep->name(), "ep");
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < s.world(); ++r) {
    int want_ep = 0, want_edp = 0;
    for (int m : group_ranks(s, r, Group::ep)) want_ep += m;
    for (int m : group_ranks(s, r, Group::edp)) want_edp += m;
    EXPECT_EQ(ep_sum[size_t(r)], want_ep) << r;
    EXPECT_EQ(edp_sum[size_t(r)], want_edp) << r;
  }
}

}  // namespace
}  // namespace moe::comm
