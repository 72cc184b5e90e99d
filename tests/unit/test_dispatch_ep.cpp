// The expert-parallel dispatcher and the group-wide capacity plan, over an in-process group of
// threads, against the single-process LocalDispatcher on the concatenated batch.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <thread>

#include "moe/ep_dispatcher.h"
#include "src/comm/thread_communicator.h"
#include "src/core/philox.h"

namespace moe {
namespace {

void on_ranks(int n, const std::function<void(comm::Communicator&)>& body) {
  auto group = comm::make_thread_group(n, "ep");
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(*group[size_t(r)]); });
  for (auto& t : threads) t.join();
}

// A global batch of P*N tokens: skewed top-2 routing that never picks expert E-1, scores with
// ties (quantised), random combine weights, activations and output gradients.
struct Batch {
  int64_t P, N, K = 2, E, D = 5;
  std::vector<int32_t> idx;
  std::vector<float> score, weights, x, dout;
  Batch(int64_t p, int64_t n, int64_t e) : P(p), N(n), E(e) {
    const uint64_t key = rng_key(5, "dispatch_ep");
    uint64_t ctr = 0;
    for (int64_t t = 0; t < P * N; ++t) {
      const int32_t a = int32_t(t * 7 % (E - 1) * (t % 3 == 0 ? 0 : 1));  // expert 0 is popular
      const int32_t b = int32_t((a + 1 + t % (E - 2)) % (E - 1));
      idx.push_back(a);
      idx.push_back(b == a ? (a + 1) % int32_t(E - 1) : b);
      for (int j = 0; j < 2; ++j) {
        score.push_back(float(int(4 + 2 * philox_normal(key, ctr++))) / 8.0f);
        weights.push_back(0.25f + 0.5f * std::abs(philox_normal(key, ctr++)));
      }
    }
    for (int64_t i = 0; i < P * N * D; ++i) {
      x.push_back(philox_normal(key, ctr++));
      dout.push_back(philox_normal(key, ctr++));
    }
  }
  // rank r's slice of a per-token (width w) or per-assignment array
  template <class T>
  const T* slice(const std::vector<T>& v, int r, int64_t w) const { return v.data() + r * N * w; }
};

// The expert applied to its rows: a different scale per global expert, so misrouted rows show.
void fake_experts(std::vector<float>& out, const std::vector<float>& in, const std::vector<int64_t>& offsets,
                  int64_t first_expert, int64_t D) {
  out.resize(in.size());
  for (size_t j = 0; j + 1 < offsets.size(); ++j)
    for (int64_t i = offsets[j] * D; i < offsets[j + 1] * D; ++i)
      out[size_t(i)] = in[size_t(i)] * float(2 + first_expert + int64_t(j));
}

struct Result {
  std::vector<float> expert_in, out, dexpert_out, dweights, dtokens;
  std::vector<int64_t> offsets;
  int64_t dropped = 0;
};

// One forward and backward through a dispatcher (identity-derivative "experts": d(in) = d(out) * scale).
Result run(TokenDispatcher& d, const Batch& b, int r, int64_t N, int64_t first_expert, comm::Communicator* group,
           double cf = 0.0) {
  Result res;
  DispatchPlan plan;
  d.plan(plan, b.slice(b.idx, r, b.K), b.slice(b.score, r, b.K), N, b.K, b.E, cf, b.P * b.N, "probs");
  (void)group;
  res.dropped = plan.dropped;
  d.dispatch_preprocess(plan);
  d.dispatch(b.slice(b.x, r, b.D), b.D);
  d.dispatch_postprocess(res.expert_in, res.offsets);
  std::vector<float> expert_out;
  fake_experts(expert_out, res.expert_in, res.offsets, first_expert, b.D);
  d.combine_preprocess(expert_out.data(), b.slice(b.weights, r, b.K));
  d.combine();
  res.out.assign(size_t(N * b.D), 0.0f);
  d.combine_postprocess(res.out.data());
  res.dexpert_out.assign(expert_out.size(), 0.0f);
  res.dweights.assign(size_t(N * b.K), 0.0f);
  d.combine_backward(res.dexpert_out.data(), res.dweights.data(), b.slice(b.dout, r, b.D), expert_out.data(),
                     b.slice(b.weights, r, b.K));
  std::vector<float> dexpert_in;
  fake_experts(dexpert_in, res.dexpert_out, res.offsets, first_expert, b.D);
  res.dtokens.assign(size_t(N * b.D), 0.0f);
  d.dispatch_backward(res.dtokens.data(), dexpert_in.data());
  return res;
}

void expect_ep_matches_local(int P, double cf) {
  const Batch b(P, 12, 8);
  LocalDispatcher local;
  const Result ref = run(local, b, 0, b.P * b.N, 0, nullptr, cf);
  if (cf > 0) {
    ASSERT_GT(ref.dropped, 0) << "the capacity case must drop";
  }
  const int64_t El = b.E / P;
  on_ranks(P, [&](comm::Communicator& c) {
    const int r = c.rank();
    EpDispatcher ep(c, &c, b.E);
    const Result got = run(ep, b, r, b.N, r * El, &c, cf);
    // this rank's experts receive exactly the reference rows of those experts, in global token order
    ASSERT_EQ(int64_t(got.offsets.size()), El + 1);
    const int64_t r0 = ref.offsets[size_t(r * El)];
    for (int64_t j = 0; j <= El; ++j) EXPECT_EQ(got.offsets[size_t(j)], ref.offsets[size_t(r * El + j)] - r0);
    for (size_t i = 0; i < got.expert_in.size(); ++i) EXPECT_EQ(got.expert_in[i], ref.expert_in[size_t(r0 * b.D) + i]);
    for (size_t i = 0; i < got.dexpert_out.size(); ++i)
      EXPECT_FLOAT_EQ(got.dexpert_out[i], ref.dexpert_out[size_t(r0 * b.D) + i]);
    for (size_t i = 0; i < got.out.size(); ++i) EXPECT_FLOAT_EQ(got.out[i], ref.out[size_t(r * b.N * b.D) + i]);
    for (size_t i = 0; i < got.dtokens.size(); ++i)
      EXPECT_FLOAT_EQ(got.dtokens[i], ref.dtokens[size_t(r * b.N * b.D) + i]);
    for (size_t i = 0; i < got.dweights.size(); ++i)
      EXPECT_FLOAT_EQ(got.dweights[i], ref.dweights[size_t(r * b.N * b.K) + i]);
  });
}

TEST(DispatchEp, MatchesLocalDispatcherDropless) {
  expect_ep_matches_local(2, 0.0);
  expect_ep_matches_local(4, 0.0);
}

TEST(DispatchEp, MatchesLocalDispatcherWithCapacity) {
  expect_ep_matches_local(2, 1.0);
  expect_ep_matches_local(4, 0.75);
}

// plan_dispatch over a group keeps the same global assignments as one process on the whole batch.
void expect_capacity_invariant(int P, const std::string& policy, double cf) {
  const Batch b(P, 10, 6);
  DispatchPlan ref;
  plan_dispatch(ref, b.idx.data(), b.score.data(), b.P * b.N, b.K, b.E, cf, b.P * b.N, policy);
  ASSERT_GT(ref.dropped, 0) << "the case must drop";
  std::vector<std::set<int64_t>> got(size_t(b.E));
  std::vector<int64_t> dropped(static_cast<size_t>(P));
  on_ranks(P, [&](comm::Communicator& c) {
    const int r = c.rank();
    DispatchPlan plan;
    plan_dispatch(plan, b.slice(b.idx, r, b.K), b.slice(b.score, r, b.K), b.N, b.K, b.E, cf, b.P * b.N, policy, &c);
    dropped[size_t(r)] = plan.dropped;
    c.barrier();
    for (int q = 0; q < P; ++q) {  // one rank at a time writes the shared sets
      if (q == r)
        for (int64_t e = 0; e < b.E; ++e)
          for (int64_t i = plan.offsets[size_t(e)]; i < plan.offsets[size_t(e + 1)]; ++i)
            got[size_t(e)].insert(r * b.N * b.K + plan.slots[size_t(i)]);
      c.barrier();
    }
  });
  int64_t total = 0;
  for (int64_t d : dropped) total += d;
  EXPECT_EQ(total, ref.dropped);
  for (int64_t e = 0; e < b.E; ++e) {
    const std::set<int64_t> want(ref.slots.begin() + ref.offsets[size_t(e)],
                                 ref.slots.begin() + ref.offsets[size_t(e + 1)]);
    EXPECT_EQ(got[size_t(e)], want) << policy << " expert " << e;
  }
}

TEST(DispatchEp, CapacityIsDecidedOverTheGroup) {
  for (const char* policy : {"probs", "position"}) {
    expect_capacity_invariant(2, policy, 1.0);
    expect_capacity_invariant(3, policy, 0.5);
    expect_capacity_invariant(4, policy, 1.0);
  }
}

}  // namespace
}  // namespace moe
