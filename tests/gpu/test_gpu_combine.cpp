// invert_permutation and combine_rows (kernels/cuda/combine.cuh). The inverse against a host loop
// on the compact layout of permute_by_expert and on blocked layouts with padding rows
// (expand_expert_rows); combine_rows bit for bit against a host loop that sums in k order with
// fmaf, and against the atomic scatter_add_rows on the same layout within the bound of the two
// summation orders, in fp32 and bf16, for the vector and the scalar path (row widths and buffer
// offsets), K = 1, 2, 4 and 6 (more rows than the kernel loads at once), overwrite and accumulate,
// unweighted and with dropped slots. Every buffer sits between guard bands.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cuda/combine.cuh"
#include "kernels/cuda/expert_layout.cuh"
#include "kernels/cuda/permute.cuh"
#include "kernels/cuda/routing.cuh"
#include "moe/expert_padding.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/guarded.h"

namespace moe::gpu_test {
namespace {

constexpr int32_t kUnset = -7;  // inverse entries before the kernel runs

// A random expert layout of R rows for N tokens of K slots: slots[r] (-1 on padding rows), rows[r]
// = slots[r] / K (-1 on padding), slot_row (the inverse; -1 for a dropped slot, whose row is then
// padding too).
struct Layout {
  std::vector<int32_t> slots, rows, slot_row;
};
Layout random_layout(int64_t N, int64_t K, int64_t R, int64_t drop_every, uint64_t seed) {
  const int64_t M = N * K;
  std::vector<int32_t> order(size_t(R), 0);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  Layout l{std::vector<int32_t>(size_t(R), -1), std::vector<int32_t>(size_t(R), -1),
           std::vector<int32_t>(size_t(M), -1)};
  for (int64_t s = 0; s < M; ++s) {
    if (drop_every > 0 && s % drop_every == drop_every - 1) continue;
    const int32_t r = order[size_t(s)];
    l.slots[size_t(r)] = int32_t(s);
    l.rows[size_t(r)] = int32_t(s / K);
    l.slot_row[size_t(s)] = r;
  }
  return l;
}

// The contract of combine_rows, one element at a time: k order, one fused multiply-add per term.
std::vector<float> host_combine(const std::vector<float>& out0, const std::vector<float>& inp,
                                const std::vector<int32_t>& slot_row, const std::vector<float>* w, int64_t N,
                                int64_t K, int64_t D, bool accumulate) {
  std::vector<float> out(size_t(N * D));
  for (int64_t t = 0; t < N; ++t)
    for (int64_t j = 0; j < D; ++j) {
      float acc = accumulate ? out0[size_t(t * D + j)] : 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t r = slot_row[size_t(t * K + k)];
        if (r < 0) continue;
        acc = std::fma(w ? (*w)[size_t(t * K + k)] : 1.0f, inp[size_t(r * D + j)], acc);
      }
      out[size_t(t * D + j)] = acc;
    }
  return out;
}

// Elements of got outside |got - ref| <= (2K + 2) u A, A = |start| + sum_k |w_k v_k|, u = 2^-24:
// each of the two results is the exact sum with at most K roundings of partial sums bounded by A
// (K u A), plus, for scatter_add_rows, K rounded products (u A); 2K + 1 to first order, +1 margin.
int64_t outside_order_bound(const std::vector<float>& got, const std::vector<float>& ref,
                            const std::vector<float>& start, const std::vector<float>& inp,
                            const std::vector<int32_t>& slot_row, const std::vector<float>* w, int64_t N, int64_t K,
                            int64_t D) {
  int64_t bad = 0;
  for (int64_t t = 0; t < N; ++t)
    for (int64_t j = 0; j < D; ++j) {
      double a = std::fabs(double(start[size_t(t * D + j)]));
      for (int64_t k = 0; k < K; ++k) {
        const int64_t r = slot_row[size_t(t * K + k)];
        if (r >= 0) a += std::fabs(double(w ? (*w)[size_t(t * K + k)] : 1.0f) * inp[size_t(r * D + j)]);
      }
      const double bound = double(2 * K + 2) * std::ldexp(1.0, -24) * a;
      bad += std::fabs(double(got[size_t(t * D + j)]) - double(ref[size_t(t * D + j)])) > bound;
    }
  return bad;
}

struct Case {
  int64_t D, K;
  bool accumulate, weighted;
  int64_t off_t, off_f;  // T buffers and fp32 buffers offset by this many elements
  int64_t drop_every = 0;
};

std::string describe(const Case& c, bool bf16) {
  return std::string(bf16 ? "bf16" : "fp32") + " D " + std::to_string(c.D) + " K " + std::to_string(c.K) +
         (c.accumulate ? " accumulate" : " overwrite") + (c.weighted ? "" : " unweighted") + " offsets " +
         std::to_string(c.off_t) + "/" + std::to_string(c.off_f) +
         (c.drop_every ? " drop every " + std::to_string(c.drop_every) : "");
}

// combine_rows on a random layout with padding rows (random data there: never read) against the
// host loop (bit for bit) and scatter_add_rows (within the order bound).
template <typename T>
void check_combine(const Case& c, const Layout& l, int64_t N, uint64_t seed) {
  const std::string what = describe(c, std::is_same_v<T, bf16>);
  const int64_t K = c.K, D = c.D, M = N * K, R = int64_t(l.slots.size()), pad = D + 8;
  const auto inp_t = from_floats<T>(random_floats(R * D, seed));
  const auto inp = as_float(inp_t);
  const auto w = random_floats(M, seed + 1, 0.0f, 1.0f), out0 = random_floats(N * D, seed + 2);
  std::vector<float> w_row(size_t(R), 0.0f);  // scatter_add_rows takes its weights per layout row
  for (int64_t r = 0; r < R; ++r)
    if (l.slots[size_t(r)] >= 0) w_row[size_t(r)] = w[size_t(l.slots[size_t(r)])];
  const std::vector<float>* wp = c.weighted ? &w : nullptr;
  const auto ref = host_combine(out0, inp, l.slot_row, wp, N, K, D, c.accumulate);

  Guarded<T> ginp(inp_t, pad, c.off_t);
  Guarded<float> gout(out0, pad, c.off_f), gw(w, 4, 0);
  Guarded<int32_t> gslot_row(l.slot_row, 4, 0);
  // accumulate: start = out (in place); overwrite: no start.
  cuda::combine_rows(gout.ptr(), c.accumulate ? gout.ptr() : nullptr, ginp.ptr(), gslot_row.ptr(),
                     c.weighted ? gw.ptr() : nullptr, N, K, D, stream());
  const auto got = gout.host();
  int64_t differ = 0;
  for (size_t i = 0; i < ref.size(); ++i) differ += got[i] != ref[i];
  EXPECT_EQ(differ, 0) << what << ": elements that differ from the k-order fmaf sum";
  if (c.accumulate) {  // out of place (the device step's residual add): the same bits, start untouched
    Guarded<float> gstart(out0, pad, c.off_f), gout2(random_floats(N * D, seed + 3), pad, c.off_f);
    cuda::combine_rows(gout2.ptr(), gstart.ptr(), ginp.ptr(), gslot_row.ptr(), c.weighted ? gw.ptr() : nullptr, N, K,
                       D, stream());
    const auto got2 = gout2.host();
    int64_t differ2 = 0;
    for (size_t i = 0; i < ref.size(); ++i) differ2 += got2[i] != ref[i];
    EXPECT_EQ(differ2, 0) << what << ": out of place";
    EXPECT_EQ(gstart.host(), out0) << what << ": start changed";
    EXPECT_TRUE(gstart.guards_intact() && gout2.guards_intact()) << what;
  }
  for (const bool ok : {ginp.guards_intact(), gout.guards_intact(), gw.guards_intact(), gslot_row.guards_intact()})
    EXPECT_TRUE(ok) << what;

  const std::vector<float> start = c.accumulate ? out0 : std::vector<float>(size_t(N * D), 0.0f);
  Dev<float> gsc(start), gw_row(w_row);
  Dev<int32_t> grows(l.rows);
  cuda::scatter_add_rows(gsc.ptr, ginp.ptr(), grows.ptr, c.weighted ? gw_row.ptr : nullptr, R, D, stream());
  EXPECT_EQ(outside_order_bound(got, gsc.host(), start, inp, l.slot_row, wp, N, K, D), 0) << what << " vs scatter";
}

template <typename T>
void check_combine_grid(uint64_t seed, const std::vector<std::pair<int64_t, int64_t>>& offsets) {
  const int64_t N = 37;
  for (const int64_t D : {1, 7, 12, 64, 1032})  // 1032: 129 bf16 vectors, a partial last round of lanes
    for (const int64_t K : {1, 2, 4, 6}) {
      const Layout l = random_layout(N, K, N * K + N / 2 + 5, 0, seed += 10);
      for (const bool accumulate : {false, true})
        for (const auto& [off_t, off_f] : offsets)
          check_combine<T>(Case{D, K, accumulate, true, off_t, off_f}, l, N, seed += 10);
    }
}

TEST(GpuCombine, Fp32MatchesKOrderSumAndScatterAdd) {
  MOE_REQUIRE_GPU();
  check_combine_grid<float>(5000, {{0, 0}, {1, 0}, {0, 1}});
}

TEST(GpuCombine, Bf16MatchesKOrderSumAndScatterAdd) {
  MOE_REQUIRE_GPU();
  check_combine_grid<bf16>(6000, {{0, 0}, {1, 0}, {4, 0}, {0, 1}});  // 4 bf16: 8-byte aligned only
}

// The backward's un-permutation (no weights, overwrite) and slots that no expert took.
TEST(GpuCombine, UnweightedAndDroppedSlots) {
  MOE_REQUIRE_GPU();
  const int64_t N = 29;
  uint64_t seed = 7000;
  for (const int64_t D : {7, 64})
    for (const int64_t K : {2, 6}) {
      const Layout full = random_layout(N, K, N * K + 9, 0, seed += 10);
      const Layout dropped = random_layout(N, K, N * K + 9, 3, seed += 10);
      for (const bool accumulate : {false, true}) {
        check_combine<float>(Case{D, K, accumulate, false, 0, 0}, full, N, seed += 10);
        check_combine<bf16>(Case{D, K, accumulate, false, 0, 0}, full, N, seed += 10);
        check_combine<float>(Case{D, K, accumulate, true, 0, 0, 3}, dropped, N, seed += 10);
        check_combine<bf16>(Case{D, K, accumulate, false, 0, 0, 3}, dropped, N, seed += 10);
      }
    }
}

// The inverse of a layout's slots against the host loop; every one of the M slots is found.
void check_inverse(const std::vector<int32_t>& slots, int64_t M, const std::string& what) {
  std::vector<int32_t> ref(size_t(M), kUnset);
  for (int64_t r = 0; r < int64_t(slots.size()); ++r)
    if (slots[size_t(r)] >= 0) ref[size_t(slots[size_t(r)])] = int32_t(r);
  EXPECT_EQ(std::count(ref.begin(), ref.end(), kUnset), 0) << what << ": the layout misses slots";
  Guarded<int32_t> gslots(slots, 16, 0), ginv(std::vector<int32_t>(size_t(M), kUnset), 16, 0);
  cuda::invert_permutation(ginv.ptr(), gslots.ptr(), int64_t(slots.size()), stream());
  EXPECT_EQ(ginv.host(), ref) << what;
  EXPECT_TRUE(ginv.guards_intact()) << what;
  EXPECT_TRUE(gslots.guards_intact()) << what;
}

struct Routed {
  std::vector<int32_t> slots, rows;
  std::vector<int64_t> offsets;
  Dev<int32_t> gslots, grows;
  Dev<int64_t> goffsets;
};
// permute_by_expert's compact layout of random top-K choices (expert `hot` takes `hot_every`th slot).
void route(Routed& out, int64_t N, int64_t K, int64_t E, int64_t hot_every, uint64_t seed) {
  const int64_t M = N * K;
  auto ids = random_ints(M, seed, 0, int32_t(E - 1));  // expert E - 1 stays empty
  for (int64_t s = 0; hot_every > 0 && s < M; s += hot_every) ids[size_t(s)] = 0;
  Dev<int32_t> gids(ids);
  cuda::permute_by_expert(out.gslots.ptr, out.grows.ptr, out.goffsets.ptr, gids.ptr, M, K, E, stream());
  out.slots = out.gslots.host();
  out.rows = out.grows.host();
  out.offsets = out.goffsets.host();
}

TEST(GpuCombine, InvertsTheCompactLayout) {
  MOE_REQUIRE_GPU();
  for (const int64_t K : {1, 2, 4}) {
    const int64_t N = 301, M = N * K, E = 6;
    Routed r{{}, {}, {}, Dev<int32_t>(M), Dev<int32_t>(M), Dev<int64_t>(E + 1)};
    route(r, N, K, E, 0, 8000 + uint64_t(K));
    check_inverse(r.slots, M, "compact K " + std::to_string(K));
  }
}

// The blocked layout of the device step (expand_expert_rows, -1 on padding rows), with one block
// per expert and with a hot expert that takes several blocks; then the combine over it.
TEST(GpuCombine, InvertsBlockedLayoutsAndCombinesOverThem) {
  MOE_REQUIRE_GPU();
  const int64_t N = 150, K = 2, M = N * K, E = 5, D = 24;
  struct Plan {
    int64_t hot_every;
    double allowance;
    bool several_blocks;
  };
  for (const Plan p : {Plan{0, 8.0, false}, Plan{2, 1.5, true}}) {
    const std::string what = "hot every " + std::to_string(p.hot_every);
    Routed r{{}, {}, {}, Dev<int32_t>(M), Dev<int32_t>(M), Dev<int64_t>(E + 1)};
    route(r, N, K, E, p.hot_every, 9000 + uint64_t(p.hot_every));
    const ExpertBlocks b = expert_blocks(r.offsets.data(), E, expert_buffer_rows(M, p.allowance), p.allowance);
    ASSERT_GT(b.block, 0) << what;
    EXPECT_EQ(b.max_blocks > 1, p.several_blocks) << what;
    const int64_t R = b.rows();
    ASSERT_GT(R, M) << what << ": no padding rows";
    Dev<int64_t> gstart(b.start);
    Dev<int32_t> lslots(R), lrows(R);
    cuda::expand_expert_rows(lslots.ptr, lrows.ptr, r.gslots.ptr, r.grows.ptr, r.goffsets.ptr, gstart.ptr, E, R,
                             stream());
    Layout l{lslots.host(), lrows.host(), {}};
    EXPECT_EQ(std::count(l.slots.begin(), l.slots.end(), -1), R - M) << what;
    check_inverse(l.slots, M, what);
    Dev<int32_t> gslot_row(M);
    cuda::invert_permutation(gslot_row.ptr, lslots.ptr, R, stream());
    l.slot_row = gslot_row.host();
    for (const bool accumulate : {false, true}) {
      check_combine<float>(Case{D, K, accumulate, true, 0, 0}, l, N, 9100);
      check_combine<bf16>(Case{D, K, accumulate, true, 0, 0}, l, N, 9200);
    }
  }
}

}  // namespace
}  // namespace moe::gpu_test
