// Load balancing: the aux losses against plain formulas, the aux-loss-free bias, statistics that
// do not depend on how the batch is split over ranks, and the router jitter.
#include <gtest/gtest.h>

#include <barrier>
#include <thread>

#include "src/model/transformer.h"
#include "src/train/routing_update.h"
#include "tests/unit/test_routing_fixtures.h"

namespace moe {
namespace {

// Switch: coeff * E * sum_e f_e P_e over the batch; seq: the same per sequence, averaged.
double reference_aux(const test::LayerCase& lc, bool per_sequence) {
  const Dims& d = lc.d;
  const auto& r = lc.s.router;
  const int64_t groups = per_sequence ? d.B : 1, T = d.N / groups;
  double total = 0;
  for (int64_t s = 0; s < groups; ++s) {
    std::vector<double> f(static_cast<size_t>(d.E)), P(static_cast<size_t>(d.E));
    for (int64_t t = s * T; t < (s + 1) * T; ++t) {
      for (int64_t j = 0; j < d.K; ++j) f[size_t(r.topk_idx[size_t(t * d.K + j)])] += 1.0 / double(T * d.K);
      double ssum = 0;
      for (int64_t e = 0; e < d.E; ++e) ssum += r.scores[size_t(t * d.E + e)];
      for (int64_t e = 0; e < d.E; ++e)
        P[size_t(e)] += (lc.c.moe.router == "sigmoid" ? r.scores[size_t(t * d.E + e)] / ssum
                                                      : r.scores[size_t(t * d.E + e)]) / double(T);
    }
    double dot = 0;
    for (int64_t e = 0; e < d.E; ++e) dot += f[size_t(e)] * P[size_t(e)];
    total += lc.c.moe.aux_loss_coeff * double(d.E) * dot;
  }
  return total / double(groups);
}

TEST(RoutingLoss, AuxAndZValues) {
  for (const char* router : {"softmax", "sigmoid"})
    for (const char* type : {"switch", "seq", "none"}) {
      Config c = test::tiny_model_config(2, 0);
      c.moe.router = router;
      c.moe.aux_loss_type = type;
      test::LayerCase lc(c, 3, 17);
      lc.loss();
      const double want = std::string(type) == "none" ? 0.0 : reference_aux(lc, std::string(type) == "seq");
      EXPECT_NEAR(lc.s.losses.aux, want, 1e-7) << router << " " << type;
      double z = 0;
      for (int64_t t = 0; t < lc.d.N; ++t) {
        double mx = -1e30, s = 0;
        for (int64_t e = 0; e < lc.d.E; ++e) mx = std::max(mx, double(lc.s.router.logits[size_t(t * 4 + e)]));
        for (int64_t e = 0; e < lc.d.E; ++e) s += std::exp(lc.s.router.logits[size_t(t * 4 + e)] - mx);
        z += std::pow(mx + std::log(s), 2) / double(lc.d.N);
      }
      EXPECT_NEAR(lc.s.losses.z, c.moe.z_loss_coeff * z, 1e-6) << router;
    }
  // Seq and switch differ when sequences route differently.
  Config c = test::tiny_model_config(2, 0);
  test::LayerCase a(c, 3, 17);
  c.moe.aux_loss_type = "seq";
  test::LayerCase b(c, 3, 17);
  a.loss();
  b.loss();
  EXPECT_GT(std::fabs(a.s.losses.aux - b.s.losses.aux), 1e-6);
}

// Skewed inputs send every token to expert 0; the bias rule bias += rate * sign(mean - load)
// spreads the load.
TEST(RoutingBalance, BiasMovesTowardBalance) {
  for (const char* router : {"softmax", "sigmoid"}) {
    Config c = test::tiny_model_config(2, 0);
    c.moe.router = router;
    c.moe.bias_update_rate = 0.01;
    test::LayerCase lc(c, 3, 23);
    for (int64_t t = 0; t < lc.d.N; ++t) lc.xn[size_t(t * lc.d.D)] = 2.0f;
    for (int64_t e = 0; e < lc.d.E; ++e) lc.p().router[e * lc.d.D] = e == 0 ? 2.0f : 0.0f;
    lc.loss();
    const double before = lc.s.stats.max_over_mean();
    EXPECT_EQ(lc.s.stats.tokens_per_expert[0], lc.d.N) << router;
    const double mean = double(lc.d.N * lc.d.K) / 4.0;
    for (int64_t e = 0; e < 4; ++e) {
      const double load = double(lc.s.stats.tokens_per_expert[size_t(e)]);
      EXPECT_EQ(lc.s.stats.bias[size_t(e)], load < mean ? 0.01f : (load > mean ? -0.01f : 0.0f)) << router << e;
    }
    // A fixed-size sign step ends in a small limit cycle: judge the load averaged over its last steps.
    std::vector<double> recent(4, 0.0);
    for (int step = 0; step < 200; ++step) {
      std::copy(lc.s.stats.bias.begin(), lc.s.stats.bias.end(), lc.p().router_bias);
      lc.loss();
      if (step >= 150)
        for (int64_t e = 0; e < 4; ++e) recent[size_t(e)] += double(lc.s.stats.tokens_per_expert[size_t(e)]) / 50.0;
    }
    EXPECT_GE(before, 1.9) << router;
    EXPECT_LT(*std::max_element(recent.begin(), recent.end()) / mean, 1.5) << router;
    EXPECT_LT(lc.p().router_bias[0], 0.0f) << router;
  }
}

// The trainer's hook writes the forward's updated bias into the checkpointed parameter.
TEST(RoutingBalance, UpdateWritesTheBiasParameter) {
  Config c = test::tiny_model_config(2, 0);
  c.moe.bias_update_rate = 0.01;
  ModelState m(c);
  test::randomize(m, 3);
  Transformer net(c, 2);
  auto tokens = test::random_ints(2 * (c.model.seq_len + 1), 4, 0, int32_t(c.model.vocab_size));
  net.forward(tokens.data(), m.p, {});
  const LayerLoadStats& s = *net.load_stats()[0];
  const std::vector<float> old(m.p.blocks[1].router_bias, m.p.blocks[1].router_bias + 4);
  EXPECT_EQ(s.bias, next_balancing_bias(old.data(), s.tokens_per_expert, s.assignments, 0.01));
  update_balancing_bias(c, net, m);
  EXPECT_EQ(std::vector<float>(m.p.blocks[1].router_bias, m.p.blocks[1].router_bias + 4), s.bias);
  EXPECT_NE(s.bias, old);
}

// Two "ranks" in threads, each holding one half of the batch, reduce through a barrier: the
// routing, outputs, statistics and losses equal the single-rank run (expert choice included,
// whose thresholds come from the global batch, and jitter, keyed by the global token index).
struct PairReducer {
  std::barrier<> sync{2};
  std::vector<double> part[2];
  void reduce(int rank, std::vector<double>& v) {
    part[rank] = v;
    sync.arrive_and_wait();
    for (size_t i = 0; i < v.size(); ++i) v[i] = part[0][i] + part[1][i];
    sync.arrive_and_wait();
  }
};

TEST(RoutingBalance, TwoRanksMatchOneRank) {
  for (const char* router : {"softmax", "sigmoid", "expert_choice"}) {
    Config c = test::tiny_model_config(2, 1);
    c.moe.router = router;
    c.moe.aux_loss_type = "seq";
    c.moe.router_jitter = 0.1;
    // Token-choice capacity over several ranks needs the dispatcher's batch group; dropless here.
    c.moe.capacity_factor = std::string(router) == "expert_choice" ? 0.7 : 0.0;
    test::LayerCase full(c, 4, 51);
    full.s.ctx = {7, 1, 3, 0, true};
    full.loss();
    const int64_t half = full.d.N / 2, D = full.d.D;
    PairReducer pr;
    std::vector<std::unique_ptr<test::LayerCase>> ranks;
    for (int r = 0; r < 2; ++r) {
      ranks.push_back(std::make_unique<test::LayerCase>(c, 2, 51));
      std::copy(full.xn.begin() + r * half * D, full.xn.begin() + (r + 1) * half * D, ranks[size_t(r)]->xn.begin());
      ranks[size_t(r)]->s.ctx = {7, 1, 3, r * half, true};
    }
    std::vector<std::thread> th;
    for (int r = 0; r < 2; ++r)
      th.emplace_back([&, r] {
        test::LayerCase& lc = *ranks[size_t(r)];
        lc.out.assign(size_t(lc.d.N * D), 0.0f);
        moe_layer_forward(lc.out.data(), lc.s, lc.xn.data(), lc.p(), lc.d, c.moe, lc.disp,
                          [&](std::vector<double>& v) { pr.reduce(r, v); });
      });
    for (auto& t : th) t.join();
    for (int r = 0; r < 2; ++r) {
      const test::LayerCase& lc = *ranks[size_t(r)];
      EXPECT_LT(test::max_abs_diff(lc.out.data(), full.out.data() + r * half * D, half * D), 1e-6) << router;
      EXPECT_EQ(lc.s.stats.tokens_per_expert, full.s.stats.tokens_per_expert) << router;
      EXPECT_EQ(lc.s.stats.dropped, full.s.stats.dropped) << router;
      EXPECT_NEAR(lc.s.losses.aux, full.s.losses.aux, 1e-9) << router;
      EXPECT_NEAR(lc.s.losses.z, full.s.losses.z, 1e-9) << router;
      EXPECT_EQ(std::vector<float>(lc.s.router.noise.begin(), lc.s.router.noise.end()),
                std::vector<float>(full.s.router.noise.begin() + r * half * D,
                                   full.s.router.noise.begin() + (r + 1) * half * D))
          << router;
    }
  }
}

TEST(RoutingJitter, RangeDeterminismAndTrainingOnly) {
  Config c = test::tiny_model_config(2, 0);
  c.moe.router_jitter = 0.2;
  test::LayerCase lc(c, 2, 61);
  lc.loss();  // not training: no noise
  EXPECT_TRUE(lc.s.router.noise.empty());
  const std::vector<float> clean = lc.s.router.logits;
  lc.s.ctx = {1, 1, 5, 0, true};
  lc.loss();
  const std::vector<float> a = lc.s.router.noise;
  ASSERT_EQ(a.size(), size_t(lc.d.N * lc.d.D));
  double lo = 2, hi = 0;
  for (float u : a) lo = std::min(lo, double(u)), hi = std::max(hi, double(u));
  EXPECT_GE(lo, 0.8);
  EXPECT_LT(hi, 1.2);
  EXPECT_LT(lo, 0.85);  // the noise spans its range
  EXPECT_GT(hi, 1.15);
  EXPECT_NE(lc.s.router.logits, clean);
  lc.loss();
  EXPECT_EQ(lc.s.router.noise, a);  // same (seed, step, layer): same noise
  lc.s.ctx.step = 6;
  lc.loss();
  EXPECT_NE(lc.s.router.noise, a);
  lc.s.ctx = {1, 3, 5, 0, true};
  lc.loss();
  EXPECT_NE(lc.s.router.noise, a);
  lc.s.ctx.training = false;
  lc.loss();
  EXPECT_EQ(lc.s.router.logits, clean);
}

// With jitter on, the gradient goes through the noisy router input.
TEST(RoutingJitter, GradientThroughNoise) {
  Config c = test::tiny_model_config(4, 0);  // top_k = E: no routing boundary
  c.moe.router_jitter = 0.3;
  test::LayerCase lc(c, 2, 71);
  lc.s.ctx = {2, 1, 9, 0, true};
  lc.grads();
  const std::vector<float> gx = lc.dxn, gr(lc.g().router, lc.g().router + 4 * lc.d.D);
  auto r = test::grad_check([&] { return lc.loss(); }, lc.xn.data(), gx.data(), lc.d.N * lc.d.D, 1e-2f, 2e-2);
  EXPECT_LT(r.max_rel_error, 2e-2) << test::describe(r);
  r = test::grad_check([&] { return lc.loss(); }, lc.p().router, gr.data(), 4 * lc.d.D, 1e-2f, 2e-2);
  EXPECT_LT(r.max_rel_error, 2e-2) << test::describe(r);
}

}  // namespace
}  // namespace moe
