// Finite-difference gradient checks of whole layers and of the whole model.
#include <gtest/gtest.h>

#include "src/model/transformer.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/model_fixtures.h"

namespace moe {
namespace {

struct ModelLoss {
  Config c;
  ModelState m;
  Transformer net;
  std::vector<int32_t> tokens;
  ModelLoss(const Config& cfg, int64_t batch)
      : c(cfg), m(cfg), net(cfg, batch),
        tokens(test::random_ints(batch * (cfg.model.seq_len + 1), 99, 0, int32_t(cfg.model.vocab_size))) {
    test::randomize(m, 5);
  }
  double loss() {
    StepLosses l = net.forward(tokens.data(), m.p, {});
    return l.lm_sum / double(net.dims().N) + l.aux + l.z;
  }
  void grads() {
    std::fill(m.grads.begin(), m.grads.end(), 0.0f);
    loss();
    net.backward(m.p, m.g, double(net.dims().N));
  }
};

// |g.v - (L(x + h v) - L(x - h v)) / 2h| / |g.v| for a random direction v over one tensor.
double directional_error(ModelLoss& ml, const ParamInfo& p) {
  auto v = test::random_floats(p.numel, 1000 + uint64_t(p.offset));
  double norm = 0;
  for (float e : v) norm += double(e) * e;
  for (float& e : v) e = float(e / std::sqrt(norm));  // unit direction: the step is h whatever the size
  float* x = ml.m.params.data() + p.offset;
  const float* g = ml.m.grads.data() + p.offset;
  std::vector<float> x0(x, x + p.numel);
  double gv = 0;
  for (int64_t i = 0; i < p.numel; ++i) gv += double(g[i]) * v[size_t(i)];
  const double h = 3e-2;
  for (int64_t i = 0; i < p.numel; ++i) x[i] = float(x0[size_t(i)] + h * v[size_t(i)]);
  const double lp = ml.loss();
  for (int64_t i = 0; i < p.numel; ++i) x[i] = float(x0[size_t(i)] - h * v[size_t(i)]);
  const double lm = ml.loss();
  std::copy(x0.begin(), x0.end(), x);
  return std::fabs(gv - (lp - lm) / (2 * h)) / std::max(std::fabs(gv), 1e-12);
}

// With top_k == num_experts every expert is always chosen, so the loss is smooth in every
// parameter (top-k has no boundary to cross) and the check covers router, aux and z-loss too.
TEST(ModelGrad, WholeModelEveryParameter) {
  ModelLoss ml(test::tiny_model_config(/*top_k=*/4), /*batch=*/2);
  ml.grads();
  for (const auto& p : ml.m.table.params()) {
    if (!p.trainable) continue;
    // Element by element; float forward noise makes components far below the tensor's gradient
    // scale imprecise, hence the floor.
    auto r = test::grad_check([&] { return ml.loss(); }, ml.m.params.data() + p.offset, ml.m.grads.data() + p.offset,
                              p.numel, 1e-2f, 5e-2);
    EXPECT_LT(r.max_rel_error, 3e-2) << p.name << ": " << test::describe(r);
    // Along a random direction of the whole tensor: a large signal, so a tight tolerance.
    EXPECT_LT(directional_error(ml, p), 5e-3) << p.name;
  }
}

// top_k < num_experts: expert and attention weights move no routing decision, so their gradient
// is exact; the router's is checked away from ties (fixed seed, small step).
TEST(ModelGrad, TopKRouting) {
  ModelLoss ml(test::tiny_model_config(/*top_k=*/2, /*shared=*/0), /*batch=*/2);
  ml.grads();
  for (const auto& p : ml.m.table.params()) {
    if (!p.trainable) continue;
    const bool router = p.name.find("router") != std::string::npos;
    auto r = test::grad_check([&] { return ml.loss(); }, ml.m.params.data() + p.offset, ml.m.grads.data() + p.offset,
                              p.numel, router ? 1e-3f : 1e-2f, router ? 5e-2 : 1e-2);
    EXPECT_LT(r.max_rel_error, router ? 5e-2 : 2e-2) << p.name << ": " << test::describe(r);
  }
}

TEST(ModelGrad, BackwardAccumulates) {
  ModelLoss ml(test::tiny_model_config(2), 2);
  ml.grads();
  std::vector<float> once(ml.m.grads.begin(), ml.m.grads.end());
  ml.loss();
  ml.net.backward(ml.m.p, ml.m.g, double(ml.net.dims().N));
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(ml.m.grads[i], 2 * once[i], 1e-6 + 1e-5 * std::fabs(once[i]));
}

}  // namespace
}  // namespace moe
