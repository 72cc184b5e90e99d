// The model under a half compute precision: the loss scale multiplies every gradient exactly
// (aux and z terms included), the compute copy rounds what it should, and bf16/fp16 gradients
// stay close to the fp32 ones.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/half.h"
#include "src/model/transformer.h"
#include "src/train/precision_weights.h"
#include "tests/unit/model_fixtures.h"

namespace moe {
namespace {

struct GradRun {
  Config c;
  ModelState m;
  Transformer net;
  std::vector<int32_t> tokens;
  explicit GradRun(const Config& cfg)
      : c(cfg), m(cfg), net(cfg, 2), tokens(test::random_ints(2 * (cfg.model.seq_len + 1), 99, 0, 11)) {
    test::randomize(m, 5);
  }
  // Gradients of one forward/backward with the given weights, precision and loss scale.
  std::vector<float> grads(const ModelParams& p, Precision prec, double scale) {
    std::fill(m.grads.begin(), m.grads.end(), 0.0f);
    const PrecisionScope s(prec, scale);
    net.forward(tokens.data(), p, {});
    net.backward(p, m.g, double(net.dims().N));
    return {m.grads.begin(), m.grads.end()};
  }
};

TEST(PrecisionModel, LossScaleMultipliesEveryGradientExactly) {
  GradRun r(test::tiny_model_config(/*top_k=*/2));
  const auto g1 = r.grads(r.m.p, Precision::fp32, 1.0);
  const auto g2 = r.grads(r.m.p, Precision::fp32, 1024.0);
  for (const auto& p : r.m.table.params()) {
    if (!p.trainable) continue;
    for (int64_t i = 0; i < p.numel; ++i)
      ASSERT_EQ(g2[size_t(p.offset + i)], 1024.0f * g1[size_t(p.offset + i)]) << p.name << "[" << i << "]";
  }
}

TEST(PrecisionModel, ComputeWeightsRoundAllButNormsAndRouter) {
  Config c = test::tiny_model_config(2);
  c.train.precision = "bf16";
  ModelState m(c);
  test::randomize(m, 3);
  ComputeWeights w(c, m.table);
  const ModelParams& p = w.refresh(m);
  EXPECT_EQ(w.bytes(), int64_t(m.params.size() * sizeof(float)));
  const float* base = p.tok_embeddings - m.table.params()[0].offset;
  for (const auto& t : m.table.params()) {
    const bool keep = t.name.find("norm") != std::string::npos || t.name.find("router") != std::string::npos;
    EXPECT_EQ(ComputeWeights::rounds(t.name), !keep) << t.name;
    int64_t changed = 0;
    for (int64_t i = 0; i < t.numel; ++i) {
      const float master = m.params[size_t(t.offset + i)], copy = base[t.offset + i];
      const float want = keep ? master : half::bf16_to_fp32(half::fp32_to_bf16_ref(master));
      ASSERT_EQ(half::bits_of(copy), half::bits_of(want)) << t.name << "[" << i << "]";
      changed += copy != master;
    }
    if (!keep && t.numel > 4) {
      EXPECT_GT(changed, 0) << t.name;
    }
  }
  Config f = c;
  f.train.precision = "fp32";
  ComputeWeights none(f, m.table);
  EXPECT_EQ(&none.refresh(m), &m.p);
  EXPECT_EQ(none.bytes(), 0);
}

// The half-precision gradient of every tensor points the same way as the fp32 one and has nearly
// its length: cosine and relative norm error within the half type's precision (bf16 8 bits).
TEST(PrecisionModel, HalfGradientsTrackFp32) {
  for (const char* prec : {"bf16", "fp16"}) {
    Config c = test::tiny_model_config(2);
    c.train.precision = prec;
    GradRun r(c);
    const auto g32 = r.grads(r.m.p, Precision::fp32, 1.0);
    ComputeWeights w(c, r.m.table);
    const auto gh = r.grads(w.refresh(r.m), parse_precision(prec), prec == std::string("fp16") ? 1024.0 : 1.0);
    const double unscale = prec == std::string("fp16") ? 1.0 / 1024.0 : 1.0;
    for (const auto& p : r.m.table.params()) {
      if (!p.trainable) continue;
      double dot = 0, n32 = 0, nh = 0;
      for (int64_t i = 0; i < p.numel; ++i) {
        const double a = g32[size_t(p.offset + i)], b = gh[size_t(p.offset + i)] * unscale;
        dot += a * b;
        n32 += a * a;
        nh += b * b;
      }
      if (n32 == 0) continue;
      EXPECT_GT(dot / std::sqrt(n32 * nh), 0.995) << prec << " " << p.name;
      EXPECT_LT(std::fabs(std::sqrt(nh) - std::sqrt(n32)) / std::sqrt(n32), 0.03) << prec << " " << p.name;
    }
  }
}

}  // namespace
}  // namespace moe
