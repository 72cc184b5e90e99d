// KV-cache decoding against the training forward, RoPE at a position, and seeded sampling.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "src/model/kv_cache.h"
#include "src/model/transformer.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/generate.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

// log_softmax of the logits after `seq`, by the training forward over the whole sequence: V rows
// repeat seq and differ only in the last target v, whose loss is lse - logit[v].
std::vector<double> full_forward_logprobs(const Config& c, const ModelParams& p, const std::vector<int32_t>& seq) {
  Config rc = c;
  const int64_t L = int64_t(seq.size()), V = c.model.vocab_size;
  rc.model.seq_len = L;
  Transformer net(rc, V);
  std::vector<int32_t> tokens;
  for (int64_t v = 0; v < V; ++v) {
    tokens.insert(tokens.end(), seq.begin(), seq.end());
    tokens.push_back(int32_t(v));
  }
  net.set_routing_step(0, 0, /*training=*/false);
  net.forward(tokens.data(), p, [](std::vector<double>&) {});
  std::vector<double> out(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) out[size_t(v)] = -double(net.token_losses()[size_t(v * L + L - 1)]);
  return out;
}

std::vector<double> log_softmax(const std::vector<float>& logits) {
  double mx = -INFINITY, sum = 0;
  for (float l : logits) mx = std::max(mx, double(l));
  for (float l : logits) sum += std::exp(double(l) - mx);
  std::vector<double> out;
  for (float l : logits) out.push_back(double(l) - mx - std::log(sum));
  return out;
}

size_t argmax(const std::vector<double>& v) { return size_t(std::max_element(v.begin(), v.end()) - v.begin()); }

class Generate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::fresh_dir("generate"));
    config_ = new Config(test::small_train_config(test::make_corpus(*dir_)));
    config_->moe.num_shared_experts = 1;  // every kind of FFN takes part
    TrainOptions o;
    o.run_dir = *dir_ + "/run";
    o.quiet = true;
    train(*config_, o, test::test_world());  // trained weights: well-separated logits
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete config_;
    delete dir_;
  }
  static std::string* dir_;
  static Config* config_;
};
std::string* Generate::dir_ = nullptr;
Config* Generate::config_ = nullptr;

TEST_F(Generate, GreedyKvCacheMatchesFullForward) {
  const Config& c = *config_;
  ModelState m(c);
  load_weights(*dir_ + "/run", m);
  std::vector<int32_t> seq{256, 't', 'h', 'e', ' '};
  SamplingOptions greedy;
  greedy.temperature = 0;
  const std::vector<int32_t> gen = generate(c, m.p, seq, 12, greedy, -1);
  ASSERT_EQ(gen.size(), 12u);
  Decoder dec(c, m.p, int64_t(seq.size() + gen.size()));
  for (size_t i = 0; i + 1 < seq.size(); ++i) dec.feed(seq[i]);
  for (size_t n = 0; n < gen.size(); ++n) {
    const std::vector<double> cached = log_softmax(dec.feed(seq.back()));
    const std::vector<double> full = full_forward_logprobs(c, m.p, seq);
    for (size_t v = 0; v < full.size(); ++v) ASSERT_NEAR(cached[v], full[v], 2e-4) << "token " << n << " id " << v;
    ASSERT_EQ(argmax(full), size_t(gen[n])) << "generated token " << n;
    seq.push_back(gen[n]);
  }
}

TEST_F(Generate, SamplingIsDeterministicForASeed) {
  const Config& c = *config_;
  ModelState m(c);
  load_weights(*dir_ + "/run", m);
  const std::vector<int32_t> prompt{256, 'a'};
  SamplingOptions o;
  o.temperature = 1.3;
  o.top_p = 0.9;
  o.seed = 7;
  const auto a = generate(c, m.p, prompt, 24, o, -1), b = generate(c, m.p, prompt, 24, o, -1);
  EXPECT_EQ(a, b);
  o.seed = 8;
  EXPECT_NE(a, generate(c, m.p, prompt, 24, o, -1)) << "another seed should draw another text";
}

TEST(Sampling, TopPAndTemperature) {
  const std::vector<float> logits{0.0f, 3.0f, 1.0f, 2.9f};
  SamplingOptions o;
  o.temperature = 0;
  EXPECT_EQ(sample_token(logits, o, 0), 1);
  // A nucleus of one id is greedy whatever the draw.
  o.temperature = 1.0;
  o.top_p = 1e-6;
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, o, i), 1);
  // top_p = 0.6 keeps ids 1 and 3 (about 0.48 + 0.43 of the mass): 0 and 2 never appear.
  o.top_p = 0.6;
  int seen[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < 400; ++i) ++seen[sample_token(logits, o, i)];
  EXPECT_EQ(seen[0] + seen[2], 0);
  EXPECT_GT(seen[1], 100);
  EXPECT_GT(seen[3], 100);
  // Full nucleus at a high temperature reaches every id.
  o.top_p = 1.0;
  o.temperature = 5.0;
  int all[4] = {0, 0, 0, 0};
  for (int64_t i = 0; i < 400; ++i) ++all[sample_token(logits, o, i)];
  for (int k = 0; k < 4; ++k) EXPECT_GT(all[k], 20) << k;
}

TEST(KvCache, RopeAtPositionMatchesTheKernelRow) {
  const int64_t T = 9, H = 2, hd = 8;
  std::vector<float> x(size_t(T * H * hd));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.37f);
  std::vector<float> full(x.size());
  ops::rope_forward(full.data(), x.data(), 1, T, H, hd, 10000.0f);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> row(x.begin() + t * H * hd, x.begin() + (t + 1) * H * hd);
    rope_at_position(row.data(), t, H, hd, 10000.0f);
    for (int64_t i = 0; i < H * hd; ++i) EXPECT_EQ(row[size_t(i)], full[size_t(t * H * hd + i)]) << t << " " << i;
  }
}

TEST(GenerateConfig, ExpertChoiceIsRefused) {
  Config c;
  c.source = "gen.yaml";
  c.moe.router = "expert_choice";
  try {
    check_generation_config(c);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("moe.router"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
