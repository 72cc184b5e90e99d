// Every routing variant against the plain-loops reference (outputs, routing maps, statistics),
// and finite-difference gradients through router, experts, shared experts and the input.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tests/unit/test_routing_fixtures.h"

namespace moe {
namespace {

struct Variant {
  std::string name;
  std::function<void(Config&)> set;
};

// Each variant changes the defaults of tiny_model_config (E 4, K 2, one shared expert).
std::vector<Variant> variants() {
  return {
      {"softmax_then_topk", [](Config&) {}},
      {"softmax_no_norm_scaled", [](Config& c) { c.moe.norm_topk_prob = false; c.moe.router_scale = 2.5; }},
      {"topk_then_softmax", [](Config& c) { c.moe.score_order = "topk_then_softmax"; }},
      {"sigmoid", [](Config& c) { c.moe.router = "sigmoid"; c.moe.router_scale = 2.5; }},
      {"sigmoid_no_norm", [](Config& c) { c.moe.router = "sigmoid"; c.moe.norm_topk_prob = false; }},
      {"sigmoid_groups",
       [](Config& c) {
         c.moe.router = "sigmoid";
         c.moe.num_experts = 8;
         c.moe.top_k = 3;
         c.moe.num_groups = 4;
         c.moe.topk_groups = 2;
       }},
      {"softmax_groups_seq_aux",
       [](Config& c) {
         c.moe.num_experts = 6;
         c.moe.num_groups = 3;
         c.moe.topk_groups = 1;
         c.moe.aux_loss_type = "seq";
       }},
      {"expert_choice", [](Config& c) { c.moe.router = "expert_choice"; }},
      {"expert_choice_cf_seq",
       [](Config& c) {
         c.moe.router = "expert_choice";
         c.moe.capacity_factor = 0.6;
         c.moe.aux_loss_type = "seq";
         c.moe.router_scale = 1.5;
       }},
      {"two_shared_no_aux", [](Config& c) { c.moe.num_shared_experts = 2; c.moe.aux_loss_type = "none"; }},
  };
}

Config variant_config(const Variant& v) {
  Config c = test::tiny_model_config(/*top_k=*/2, /*shared=*/1);
  v.set(c);
  return c;
}

// A non-zero balancing bias, so that the tests see it act on selection only.
void set_bias(test::LayerCase& lc, uint64_t seed) {
  if (lc.c.moe.router == "expert_choice") return;
  auto b = test::random_floats(lc.d.E, seed, -0.05f, 0.05f);
  std::copy(b.begin(), b.end(), lc.p().router_bias);
}

TEST(RoutingLayer, EveryVariantMatchesTheReference) {
  for (const Variant& v : variants()) {
    test::LayerCase lc(variant_config(v), /*batch=*/3, 11);
    set_bias(lc, 3);
    lc.loss();
    const test::RefRouting ref = test::reference_layer(lc.c, lc.p(), lc.xn.data(), lc.d);
    EXPECT_LT(test::max_abs_diff(lc.out.data(), ref.out.data(), lc.d.N * lc.d.D), 2e-5) << v.name;
    // Routing maps: the permuted rows of each expert are exactly the reference's tokens.
    const DispatchPlan& plan = lc.s.plan;
    for (int64_t e = 0; e < lc.d.E; ++e) {
      std::vector<int32_t> got(plan.rows.begin() + plan.offsets[size_t(e)],
                               plan.rows.begin() + plan.offsets[size_t(e + 1)]), want;
      for (int64_t t = 0; t < lc.d.N; ++t)
        for (int32_t x : ref.experts[size_t(t)])
          if (x == e) want.push_back(int32_t(t));
      EXPECT_EQ(got, want) << v.name << " expert " << e;
      EXPECT_EQ(lc.s.stats.tokens_per_expert[size_t(e)], ref.counts[size_t(e)]) << v.name;
    }
    if (lc.c.moe.router != "expert_choice") {
      for (int64_t t = 0; t < lc.d.N; ++t)
        for (int64_t j = 0; j < lc.d.K; ++j) {
          EXPECT_EQ(lc.s.router.topk_idx[size_t(t * lc.d.K + j)], ref.experts[size_t(t)][size_t(j)]) << v.name;
          EXPECT_NEAR(lc.s.router.weights[size_t(t * lc.d.K + j)], ref.weights[size_t(t)][size_t(j)], 1e-6) << v.name;
        }
      EXPECT_EQ(lc.s.stats.dropped, 0) << v.name;
    }
    EXPECT_NEAR(lc.s.stats.entropy, ref.entropy, 1e-5) << v.name;
    EXPECT_EQ(lc.s.stats.assignments, lc.d.N * lc.d.K);
    ASSERT_EQ(lc.s.stats.bias.size(), size_t(lc.d.E)) << v.name;
    EXPECT_EQ(lc.s.stats.bias[0], lc.p().router_bias[0]) << v.name << ": bias_update_rate is 0";
  }
}

// The bias shifts selection, never the combine weights: a large bias on one expert puts it in
// every token's top-k with its unbiased probability as weight.
TEST(RoutingLayer, BiasSelectsButDoesNotWeight) {
  for (const char* router : {"softmax", "sigmoid"}) {
    Config c = test::tiny_model_config(2, 0);
    c.moe.router = router;
    c.moe.norm_topk_prob = false;
    test::LayerCase lc(c, 2, 5);
    lc.p().router_bias[3] = 10.0f;
    lc.loss();
    for (int64_t t = 0; t < lc.d.N; ++t) {
      EXPECT_EQ(lc.s.router.topk_idx[size_t(t * 2)], 3) << router;
      EXPECT_EQ(lc.s.router.weights[size_t(t * 2)], lc.s.router.scores[size_t(t * 4 + 3)]) << router;
    }
  }
}

// Central difference of the layer loss along a random unit direction over n values at x, with the
// routing held: returns false when the step changed the routing map (then the caller skips).
bool directional(test::LayerCase& lc, float* x, const float* g, int64_t n, uint64_t seed, double h, double& err) {
  auto v = test::random_floats(n, seed);
  double norm = 0, gv = 0;
  for (float e : v) norm += double(e) * e;
  for (int64_t i = 0; i < n; ++i) gv += double(g[i]) * v[size_t(i)] / std::sqrt(norm);
  std::vector<float> x0(x, x + n);
  lc.loss();
  const auto map0 = lc.routing_map();
  for (int64_t i = 0; i < n; ++i) x[i] = float(x0[size_t(i)] + h * v[size_t(i)] / std::sqrt(norm));
  const double lp = lc.loss();
  const bool same_p = lc.routing_map() == map0;
  for (int64_t i = 0; i < n; ++i) x[i] = float(x0[size_t(i)] - h * v[size_t(i)] / std::sqrt(norm));
  const double lm = lc.loss();
  const bool same_m = lc.routing_map() == map0;
  std::copy(x0.begin(), x0.end(), x);
  err = std::fabs(gv - (lp - lm) / (2 * h)) / std::max(std::fabs(gv), 1e-12);
  return same_p && same_m;
}

struct Tensor {
  std::string name;
  float* x;
  const float* g;
  int64_t n;
};

std::vector<Tensor> tensors(test::LayerCase& lc) {
  const Dims& d = lc.d;
  std::vector<Tensor> out = {{"router", lc.p().router, lc.g().router, d.E * d.D},
                             {"experts.w1", lc.p().experts_w1, lc.g().experts_w1, d.E * d.Fe * d.D},
                             {"experts.w3", lc.p().experts_w3, lc.g().experts_w3, d.E * d.Fe * d.D},
                             {"experts.w2", lc.p().experts_w2, lc.g().experts_w2, d.E * d.D * d.Fe},
                             {"input", lc.xn.data(), lc.dxn.data(), d.N * d.D}};
  if (d.Fs > 0) {
    out.push_back({"shared.w1", lc.p().shared_w1, lc.g().shared_w1, d.Fs * d.D});
    out.push_back({"shared.w2", lc.p().shared_w2, lc.g().shared_w2, d.D * d.Fs});
  }
  return out;
}

TEST(RoutingGrad, DirectionalEveryVariant) {
  for (const Variant& v : variants()) {
    test::LayerCase lc(variant_config(v), 2, 21);
    set_bias(lc, 4);
    lc.grads();
    for (const Tensor& t : tensors(lc)) {
      std::vector<float> g(t.g, t.g + t.n);  // the loss calls below leave gradients alone; copy anyway
      int checked = 0;
      // A smaller step crosses fewer routing boundaries but carries more float noise.
      for (uint64_t seed = 0; seed < 12 && checked < 2; ++seed) {
        const double h = seed < 6 ? 1e-2 : 3e-3;
        double err = 0;
        if (!directional(lc, t.x, g.data(), t.n, 100 + seed, h, err)) continue;  // crossed a tie
        EXPECT_LT(err, h > 5e-3 ? 5e-3 : 1e-2) << v.name << " " << t.name << " h " << h;
        ++checked;
      }
      EXPECT_GE(checked, 1) << v.name << " " << t.name << ": every direction crossed a routing tie";
    }
  }
}

// Element by element on the router weights, skipping the few elements whose step moves a token
// across a routing boundary (the loss is not differentiable there).
TEST(RoutingGrad, ElementwiseRouterAwayFromTies) {
  for (const Variant& v : variants()) {
    test::LayerCase lc(variant_config(v), 2, 31);
    set_bias(lc, 6);
    lc.grads();
    const Tensor t = tensors(lc)[0];
    const std::vector<float> g(t.g, t.g + t.n);
    double scale = 0;
    for (float x : g) scale = std::max(scale, double(std::fabs(x)));
    lc.loss();
    const auto map0 = lc.routing_map();
    const float eps = 2e-3f;
    int64_t checked = 0;
    double worst = 0;
    for (int64_t i = 0; i < t.n; ++i) {
      const float x0 = t.x[i];
      t.x[i] = x0 + eps;
      const double lp = lc.loss();
      const bool same = lc.routing_map() == map0;
      t.x[i] = x0 - eps;
      const double lm = lc.loss();
      t.x[i] = x0;
      if (!same || lc.routing_map() != map0) continue;
      const double num = (lp - lm) / (double(x0 + eps) - double(x0 - eps));
      worst = std::max(worst, std::fabs(num - g[size_t(i)]) / std::max({std::fabs(num), double(std::fabs(g[size_t(i)])), 5e-2 * scale}));
      ++checked;
    }
    EXPECT_GE(checked, t.n / 2) << v.name;
    EXPECT_LT(worst, 2e-2) << v.name;
  }
}

// Experts and shared experts move no routing decision: every element is checked.
TEST(RoutingGrad, ElementwiseExperts) {
  for (const char* router : {"softmax", "sigmoid", "expert_choice"}) {
    Config c = test::tiny_model_config(2, 1);
    c.moe.router = router;
    test::LayerCase lc(c, 1, 41);
    lc.grads();
    for (const Tensor& t : tensors(lc)) {
      if (t.name == "router" || t.name == "input") continue;
      auto r = test::grad_check([&] { return lc.loss(); }, t.x, std::vector<float>(t.g, t.g + t.n).data(), t.n, 1e-2f,
                                2e-2);
      EXPECT_LT(r.max_rel_error, 2e-2) << router << " " << t.name << ": " << test::describe(r);
    }
  }
}

}  // namespace
}  // namespace moe
