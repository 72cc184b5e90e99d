// permute_by_expert against the CPU stable sort, on both paths (the counting sort for
// E <= kCountingSortMaxExperts, the CUB radix sort above), with sizes that cover every branch of
// the counting sort's plan: M = 0, a partial last tile, several tiles per block, one expert for
// all slots, empty experts, out-of-order streams.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cuda/combine.cuh"
#include "kernels/cuda/permute.cuh"
#include "kernels/cuda/routing.cuh"
#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

using PermuteFn = void (*)(int32_t*, int32_t*, int64_t*, const int32_t*, int64_t, int64_t, int64_t, cudaStream_t);

// The stable order by expert that moe/dispatcher.cpp builds with a counting sort.
void cpu_permutation(std::vector<int32_t>& slots, std::vector<int64_t>& offsets, const std::vector<int32_t>& ids,
                     int64_t E) {
  slots.resize(ids.size());
  std::iota(slots.begin(), slots.end(), 0);
  std::stable_sort(slots.begin(), slots.end(), [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  offsets.assign(E + 1, 0);
  for (int32_t id : ids) offsets[id + 1]++;
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] += offsets[e];
}

// Runs `fn` on outputs prefilled with garbage (so unwritten entries show) and compares slots,
// rows = slots / k and offsets with the CPU stable sort.
void check_path(PermuteFn fn, const std::vector<int32_t>& ids, int64_t k, int64_t E, const std::string& what,
                cudaStream_t s = stream()) {
  const int64_t M = static_cast<int64_t>(ids.size());
  std::vector<int32_t> slots;
  std::vector<int64_t> offsets;
  cpu_permutation(slots, offsets, ids, E);
  Dev<int32_t> gids(ids), gslots(std::vector<int32_t>(M, -7)), grows(std::vector<int32_t>(M, -7));
  Dev<int64_t> goff(std::vector<int64_t>(E + 1, -7));
  fn(gslots.ptr, grows.ptr, goff.ptr, gids.ptr, M, k, E, s);
  const auto hslots = gslots.host(), hrows = grows.host();
  EXPECT_EQ(goff.host(), offsets) << what;
  EXPECT_EQ(hslots, slots) << what;
  int64_t bad_rows = 0;
  for (int64_t i = 0; i < M; ++i) bad_rows += hrows[i] != slots[i] / k;
  EXPECT_EQ(bad_rows, 0) << what;
}

// Both paths where the counting sort applies, and the dispatching entry.
void check_all(const std::vector<int32_t>& ids, int64_t k, int64_t E, const std::string& what) {
  const std::string tag = what + " (M " + std::to_string(ids.size()) + ", k " + std::to_string(k) + ", E " +
                          std::to_string(E) + ")";
  check_path(cuda::permute_by_expert, ids, k, E, tag + " entry");
  check_path(cuda::permute_by_expert_radix, ids, k, E, tag + " radix");
  if (E <= cuda::kCountingSortMaxExperts) check_path(cuda::permute_by_expert_counting, ids, k, E, tag + " counting");
}

TEST(GpuPermute, RandomIdsMatchCpuStableSortForManyExpertCounts) {
  MOE_REQUIRE_GPU();
  uint64_t seed = 100;
  for (int64_t E : {1, 3, 8, 64, 200, 1024, 2000})
    for (int64_t k : {1, 2, 8}) {
      const int64_t N = 777;  // M = 777 k: never a multiple of the 1024-slot tile
      check_all(random_ints(N * k, ++seed, 0, int32_t(E)), k, E, "random");
    }
}

TEST(GpuPermute, EmptyInputGivesZeroOffsets) {
  MOE_REQUIRE_GPU();
  for (int64_t E : {1, 4, 1024, 2000}) check_all({}, 2, E, "empty");
}

TEST(GpuPermute, AllSlotsToOneExpertAndEmptyExperts) {
  MOE_REQUIRE_GPU();
  for (int64_t E : {1, 8, 200, 2000}) {
    check_all(std::vector<int32_t>(3001, int32_t(E - 1)), 1, E, "all to the last expert");
    check_all(std::vector<int32_t>(2048, int32_t(E / 2)), 2, E, "all to one expert, whole tiles");
    auto ids = random_ints(5000, 300 + uint64_t(E), 0, int32_t((E + 1) / 2));
    for (auto& id : ids) id *= 2;  // odd experts and the upper half stay empty
    for (auto& id : ids) id = std::min<int32_t>(id, int32_t(E - 1));
    check_all(ids, 2, E, "empty experts");
  }
  // Skewed: 90% of the slots to expert 3, the rest spread.
  auto ids = random_ints(20000, 400, 0, 64);
  for (size_t i = 0; i < ids.size(); ++i)
    if (i % 10 != 0) ids[i] = 3;
  check_all(ids, 2, 64, "skewed");
}

TEST(GpuPermute, SeveralTilesPerBlockAndTinyInputs) {
  MOE_REQUIRE_GPU();
  struct Case {
    int64_t M, k, E;
  };
  for (const Case& c : {Case{400002, 2, 8}, Case{200003, 1, 200}, Case{100003, 1, 1024}, Case{1100000, 1, 1}}) {
    const auto plan = cuda::counting_sort_plan(c.M, c.E);
    ASSERT_GT(plan.chunk, cuda::kCountingSortTile) << "the case must give blocks several tiles: M " << c.M;
    check_all(random_ints(c.M, 500 + uint64_t(c.E), 0, int32_t(c.E)), c.k, c.E, "several tiles per block");
  }
  for (int64_t M : {1, 31, 33, 1023, 1024, 1025, 2049})
    check_all(random_ints(M, 600 + uint64_t(M), 0, 5), 1, 5, "tiny");
}

TEST(GpuPermute, PlanCoversAllSlotsWithBoundedTable) {
  for (int64_t E : {int64_t(1), int64_t(7), int64_t(64), cuda::kCountingSortMaxExperts})
    for (int64_t M : {int64_t(1), int64_t(1024), int64_t(1025), int64_t(777777), int64_t(50000000)}) {
      const auto p = cuda::counting_sort_plan(M, E);
      EXPECT_EQ(p.chunk % cuda::kCountingSortTile, 0);
      EXPECT_GE(p.blocks * p.chunk, M) << M << " " << E;
      EXPECT_LT((p.blocks - 1) * p.chunk, M) << "no empty block: " << M << " " << E;
      EXPECT_LE(p.blocks * p.blocks * E, int64_t(1) << 20);
      EXPECT_LE(p.blocks * E, int64_t(1) << 15);
    }
  EXPECT_EQ(cuda::counting_sort_plan(0, 8).blocks, 0);
}

// Two streams at once: each (thread, stream) has its own table, so neither corrupts the other;
// repeated calls on one stream reuse it in order.
TEST(GpuPermute, ConcurrentStreamsAndRepeatedCalls) {
  MOE_REQUIRE_GPU();
  cudaStream_t s2 = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  const int64_t M = 300000, E = 16;
  const auto a = random_ints(M, 700, 0, int32_t(E)), b = random_ints(M, 701, 0, int32_t(E));
  std::vector<int32_t> sa, sb;
  std::vector<int64_t> oa, ob;
  cpu_permutation(sa, oa, a, E);
  cpu_permutation(sb, ob, b, E);
  Dev<int32_t> ga(a), gb(b), gsa(M), gsb(M), gra(M), grb(M);
  Dev<int64_t> goa(E + 1), gob(E + 1);
  MOE_CUDA_CHECK(cudaDeviceSynchronize());
  for (int rep = 0; rep < 3; ++rep) {
    cuda::permute_by_expert(gsa.ptr, gra.ptr, goa.ptr, ga.ptr, M, 1, E, stream());
    cuda::permute_by_expert(gsb.ptr, grb.ptr, gob.ptr, gb.ptr, M, 1, E, s2);
  }
  EXPECT_EQ(gsa.host(), sa);
  EXPECT_EQ(goa.host(), oa);
  EXPECT_EQ(gsb.host(), sb);
  EXPECT_EQ(gob.host(), ob);
  MOE_CUDA_CHECK(cudaStreamDestroy(s2));
}

TEST(GpuPermute, InvertsAndRoundTripsThroughGatherScatter) {
  MOE_REQUIRE_GPU();
  const int64_t N = 777, k = 2, E = 10, M = N * k, D = 24;
  auto ids = random_ints(M, 17, 0, int32_t(E - 1));  // expert E-1 stays empty
  std::vector<int32_t> slots;
  std::vector<int64_t> offsets;
  cpu_permutation(slots, offsets, ids, E);
  Dev<int32_t> gids(ids), gslots(M), grows(M), ginv(M);
  Dev<int64_t> goff(E + 1);
  cuda::permute_by_expert(gslots.ptr, grows.ptr, goff.ptr, gids.ptr, M, k, E, stream());
  cuda::invert_permutation(ginv.ptr, gslots.ptr, M, stream());
  const auto hrows = grows.host(), hinv = ginv.host();
  EXPECT_EQ(gslots.host(), slots);
  for (int64_t i = 0; i < M; ++i) EXPECT_EQ(hinv[slots[i]], i) << i;
  // Dispatch then combine with unit weights returns k times the input (each token has k slots).
  auto x = random_floats(N * D, 18);
  std::vector<float> permuted(M * D), back(N * D, 0.0f);
  ops::gather_rows(permuted.data(), x.data(), hrows.data(), M, D);
  ops::scatter_add_rows(back.data(), permuted.data(), hrows.data(), nullptr, M, D);
  Dev<float> gx(x), gperm(M * D), gback(N * D);
  cuda::gather_rows(gperm.ptr, gx.ptr, grows.ptr, M, D, stream());
  cuda::scatter_add_rows(gback.ptr, gperm.ptr, grows.ptr, nullptr, M, D, stream());
  EXPECT_EQ(gperm.host(), permuted);
  EXPECT_LT(rel_err(gback.host(), back), kTolF32);
}

}  // namespace
}  // namespace moe::gpu_test
