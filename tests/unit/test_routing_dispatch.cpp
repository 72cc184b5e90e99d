// Permutation by expert and back (values and gradients), and the exact tokens each capacity drop
// policy removes, on hand-built routings.
#include <gtest/gtest.h>

#include "moe/dispatcher.h"
#include "tests/unit/test_routing_fixtures.h"

namespace moe {
namespace {

// dispatch -> identity experts -> combine, with every combine weight 1/K (exact in float for
// K = 1, 2, 4): the tokens come back unchanged, and so does the gradient.
TEST(RoutingDispatch, PermuteUnpermuteIsIdentity) {
  for (int64_t K : {1, 2, 4}) {
    const int64_t N = 7, D = 5, E = 4;
    auto idx = test::random_ints(N * K, 3 + uint64_t(K), 0, int32_t(E));
    for (int64_t t = 0; t < N; ++t)  // distinct experts per token
      for (int64_t j = 0; j < K; ++j) idx[size_t(t * K + j)] = int32_t((t + j) % E);
    std::vector<float> score(size_t(N * K), 0.5f), w(size_t(N * K), 1.0f / float(K));
    DispatchPlan plan;
    plan_dispatch(plan, idx.data(), score.data(), N, K, E, 0.0, N, "probs");
    ASSERT_EQ(plan.rows.size(), size_t(N * K));
    auto x = test::random_floats(N * D, 9);
    LocalDispatcher disp;
    std::vector<float> expert_in, out(size_t(N * D), 0.0f);
    std::vector<int64_t> offsets;
    disp.dispatch_preprocess(plan);
    disp.dispatch(x.data(), D);
    disp.dispatch_postprocess(expert_in, offsets);
    for (int64_t e = 0; e < E; ++e)  // grouped by expert, token order inside
      for (int64_t i = offsets[size_t(e)]; i < offsets[size_t(e + 1)]; ++i) {
        EXPECT_EQ(idx[size_t(plan.slots[size_t(i)])], e);
        if (i > offsets[size_t(e)]) {
          EXPECT_LT(plan.rows[size_t(i - 1)], plan.rows[size_t(i)]);
        }
      }
    disp.combine_preprocess(expert_in.data(), w.data());
    disp.combine();
    disp.combine_postprocess(out.data());
    EXPECT_EQ(out, x) << "K " << K;

    auto dout = test::random_floats(N * D, 10);
    std::vector<float> dexpert(expert_in.size(), 0.0f), dw(size_t(N * K), 0.0f), dx(size_t(N * D), 0.0f);
    disp.combine_backward(dexpert.data(), dw.data(), dout.data(), expert_in.data(), w.data());
    disp.dispatch_backward(dx.data(), dexpert.data());
    EXPECT_EQ(dx, dout) << "K " << K;
    // dL/dw of slot (t, j) = dot(dout[t], x[t]).
    for (int64_t a = 0; a < N * K; ++a) {
      double dot = 0;
      for (int64_t i = 0; i < D; ++i) dot += double(dout[size_t(a / K * D + i)]) * x[size_t(a / K * D + i)];
      EXPECT_NEAR(dw[size_t(a)], dot, 1e-5);
    }
  }
}

// Expert choice builds its own plan: a token comes back once per expert that took it (the
// others get nothing: the residual carries them).
TEST(RoutingDispatch, ExpertChoicePlanRoundTrip) {
  Config c = test::tiny_model_config(2, 0);
  c.moe.router = "expert_choice";
  c.moe.capacity_factor = 0.3;
  test::LayerCase lc(c, 2, 8);
  lc.loss();
  const DispatchPlan& plan = lc.s.plan;
  std::vector<int> times(size_t(lc.d.N), 0);
  for (int32_t r : plan.rows) times[size_t(r)]++;
  int64_t unrouted = 0;
  for (int t : times) unrouted += t == 0;
  EXPECT_EQ(lc.s.stats.dropped, unrouted);
  EXPECT_GE(unrouted, 2);       // 4 experts x 2 slots cannot cover 10 tokens
  EXPECT_EQ(plan.capacity, 2);  // ceil(0.3 * 10 * 2 / 4)
  for (int64_t e = 0; e < lc.d.E; ++e) EXPECT_EQ(plan.offsets[size_t(e + 1)] - plan.offsets[size_t(e)], 2);

  LocalDispatcher disp;
  std::vector<float> expert_in, out(lc.xn.size(), 0.0f), ones(plan.rows.size(), 1.0f);
  std::vector<int64_t> offsets;
  disp.dispatch_preprocess(plan);
  disp.dispatch(lc.xn.data(), lc.d.D);
  disp.dispatch_postprocess(expert_in, offsets);
  disp.combine_preprocess(expert_in.data(), ones.data());
  disp.combine_postprocess(out.data());
  for (int64_t t = 0; t < lc.d.N; ++t)
    for (int64_t i = 0; i < lc.d.D; ++i)
      EXPECT_EQ(out[size_t(t * lc.d.D + i)], float(times[size_t(t)]) * lc.xn[size_t(t * lc.d.D + i)]);
}

std::vector<int32_t> expert_rows(const DispatchPlan& p, int64_t e) {
  return {p.rows.begin() + p.offsets[size_t(e)], p.rows.begin() + p.offsets[size_t(e + 1)]};
}

// Eight tokens, top-1, two experts, capacity ceil(0.5 * 8 / 2) = 2.
TEST(RoutingDispatch, DroppedSetsTopOne) {
  const std::vector<int32_t> idx = {0, 0, 1, 0, 0, 1, 1, 1};
  const std::vector<float> score = {0.3f, 0.9f, 0.2f, 0.5f, 0.9f, 0.8f, 0.1f, 0.8f};
  DispatchPlan probs, position;
  plan_dispatch(probs, idx.data(), score.data(), 8, 1, 2, 0.5, 8, "probs");
  plan_dispatch(position, idx.data(), score.data(), 8, 1, 2, 0.5, 8, "position");
  EXPECT_EQ(probs.capacity, 2);
  // Expert 0 has tokens 0,1,3,4 (0.3 0.9 0.5 0.9): probs keeps 1 and 4; position keeps 0 and 1.
  EXPECT_EQ(expert_rows(probs, 0), (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(expert_rows(position, 0), (std::vector<int32_t>{0, 1}));
  // Expert 1 has tokens 2,5,6,7 (0.2 0.8 0.1 0.8): probs keeps 5 and 7; position keeps 2 and 5.
  EXPECT_EQ(expert_rows(probs, 1), (std::vector<int32_t>{5, 7}));
  EXPECT_EQ(expert_rows(position, 1), (std::vector<int32_t>{2, 5}));
  EXPECT_EQ(probs.dropped, 4);
  EXPECT_EQ(position.dropped, 4);
  EXPECT_EQ(probs.tokens_per_expert, (std::vector<int64_t>{4, 4}));
}

// Ties in score go to the earlier token; with top-2 the dropped unit is one slot (t, j), not a token.
TEST(RoutingDispatch, DroppedSetsTopTwoWithTies) {
  // Four tokens, top-2 over three experts; capacity ceil(0.75 * 4 * 2 / 3) = 2.
  const std::vector<int32_t> idx = {0, 1, 0, 2, 1, 0, 0, 2};
  const std::vector<float> score = {0.6f, 0.4f, 0.5f, 0.5f, 0.7f, 0.3f, 0.5f, 0.5f};
  DispatchPlan probs, position;
  plan_dispatch(probs, idx.data(), score.data(), 4, 2, 3, 0.75, 4, "probs");
  plan_dispatch(position, idx.data(), score.data(), 4, 2, 3, 0.75, 4, "position");
  EXPECT_EQ(probs.capacity, 2);
  // Expert 0 slots: (0,0) 0.6, (1,0) 0.5, (2,1) 0.3, (3,0) 0.5. probs: 0.6 then the tie 0.5/0.5
  // goes to token 1; position: tokens 0 and 1.
  EXPECT_EQ(expert_rows(probs, 0), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(expert_rows(position, 0), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(std::vector<int32_t>(probs.slots.begin(), probs.slots.begin() + 2), (std::vector<int32_t>{0, 2}));
  // Expert 1: (0,1) 0.4, (2,0) 0.7: both fit. Expert 2: (1,1) 0.5, (3,1) 0.5: both fit.
  EXPECT_EQ(expert_rows(probs, 1), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(expert_rows(probs, 2), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(probs.dropped, 2);
  EXPECT_EQ(position.dropped, 2);

  // A different order of scores makes probs and position disagree: token 3 outranks token 1.
  std::vector<float> s2 = score;
  s2[6] = 0.55f;
  plan_dispatch(probs, idx.data(), s2.data(), 4, 2, 3, 0.75, 4, "probs");
  EXPECT_EQ(expert_rows(probs, 0), (std::vector<int32_t>{0, 3}));
}

// The layer drops by combine weight: with capacity, the kept assignments of an over-full expert
// are those with the largest weights, and dropped ones contribute nothing to the output.
TEST(RoutingDispatch, LayerDropsByCombineWeight) {
  Config c = test::tiny_model_config(2, 0);
  c.moe.capacity_factor = 0.5;
  test::LayerCase lc(c, 2, 12);
  lc.loss();
  const auto& r = lc.s.router;
  DispatchPlan want;
  plan_dispatch(want, r.topk_idx.data(), r.weights.data(), lc.d.N, 2, 4, 0.5, lc.d.N, "probs");
  EXPECT_EQ(lc.s.plan.rows, want.rows);
  EXPECT_EQ(lc.s.plan.slots, want.slots);
  EXPECT_GT(lc.s.stats.dropped, 0);
  EXPECT_EQ(lc.s.stats.dropped, want.dropped);
}

}  // namespace
}  // namespace moe
