#include "moe/dispatch_capacity.h"

#include <algorithm>
#include <vector>

namespace moe {

namespace {

// Per-rank expert counts and token counts of the batch group: counts[r*(E+1) + e], with each
// rank's token count N at e = E.
struct GroupCounts {
  int ranks = 1, me = 0;
  std::vector<int64_t> counts;
  int64_t at(int r, int64_t e) const { return counts[size_t(r) * size_t(counts.size() / size_t(ranks)) + size_t(e)]; }
};

GroupCounts gather_counts(const CapacityInput& in, comm::Communicator* group) {
  GroupCounts g;
  std::vector<int64_t> mine(size_t(in.E + 1));
  for (int64_t e = 0; e < in.E; ++e) mine[size_t(e)] = in.start[e + 1] - in.start[e];
  mine[size_t(in.E)] = in.N;
  if (!group || group->size() == 1) {
    g.counts = std::move(mine);
    return g;
  }
  g.ranks = group->size();
  g.me = group->rank();
  g.counts.resize(size_t(g.ranks) * mine.size());
  group->allgather(mine.data(), g.counts.data(), int64_t(sizeof(int64_t) * mine.size()));
  return g;
}

struct Entry {
  float score;
  int32_t expert;
  int64_t token;  // global token index
};

// Order of survival: higher score first, then the earlier global token.
bool before(const Entry& x, const Entry& y) { return x.score != y.score ? x.score > y.score : x.token < y.token; }

}  // namespace

void keep_earliest(const CapacityInput& in, comm::Communicator* group, int64_t* keep) {
  const GroupCounts g = gather_counts(in, group);
  for (int64_t e = 0; e < in.E; ++e) {
    int64_t before_me = 0;  // assignments to e on earlier ranks
    for (int r = 0; r < g.me; ++r) before_me += g.at(r, e);
    const int64_t mine = g.at(g.me, e);
    keep[e] = std::clamp(in.capacity - before_me, int64_t(0), mine);
  }
}

void keep_highest_scores(const CapacityInput& in, comm::Communicator* group, int32_t* by_expert, int64_t* keep) {
  const GroupCounts g = gather_counts(in, group);
  std::vector<int64_t> full;  // over-full experts, the same list on every rank
  for (int64_t e = 0; e < in.E; ++e) {
    int64_t total = 0;
    for (int r = 0; r < g.ranks; ++r) total += g.at(r, e);
    keep[e] = g.at(g.me, e);
    if (total > in.capacity) full.push_back(e);
  }
  if (full.empty()) return;

  int64_t token0 = 0;  // global index of this rank's first token
  for (int r = 0; r < g.me; ++r) token0 += g.at(r, in.E);
  std::vector<Entry> mine;
  for (int64_t e : full)
    for (int64_t i = in.start[e]; i < in.start[e + 1]; ++i) {
      const int32_t a = by_expert[i];
      mine.push_back({in.score[a], int32_t(e), token0 + a / in.K});
    }
  std::vector<Entry> all;
  if (g.ranks == 1) {
    all = mine;
  } else {
    std::vector<int64_t> bytes(size_t(g.ranks), 0);
    for (int r = 0; r < g.ranks; ++r)
      for (int64_t e : full) bytes[size_t(r)] += g.at(r, e) * int64_t(sizeof(Entry));
    int64_t total = 0;
    for (int64_t b : bytes) total += b;
    all.resize(size_t(total) / sizeof(Entry));
    group->allgatherv(mine.data(), int64_t(mine.size() * sizeof(Entry)), all.data(), bytes.data());
  }
  // The capacity-th best entry of each over-full expert is its threshold.
  std::vector<std::vector<Entry>> per(size_t(in.E));
  for (const Entry& x : all) per[size_t(x.expert)].push_back(x);
  for (int64_t e : full) {
    std::vector<Entry>& v = per[size_t(e)];
    if (in.capacity == 0) {
      keep[e] = 0;
      continue;
    }
    std::nth_element(v.begin(), v.begin() + (in.capacity - 1), v.end(), before);
    const Entry cut = v[size_t(in.capacity - 1)];
    int32_t* span = by_expert + in.start[e];
    const int64_t n = in.start[e + 1] - in.start[e];
    // stable_partition keeps token order on both sides
    int32_t* mid = std::stable_partition(span, span + n, [&](int32_t a) {
      const Entry x{in.score[a], int32_t(e), token0 + a / in.K};
      return !before(cut, x);
    });
    keep[e] = mid - span;
  }
}

}  // namespace moe
