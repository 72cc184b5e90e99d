// parallel.recompute (src/model/recompute.h): one training step under each mode gives the losses,
// the routing statistics and every gradient of mode none bit for bit (memcmp) on one rank, under
// tensor parallelism (tp 2) and under expert parallelism (ep 2 over dp 2), ranks being threads;
// and each mode keeps fewer activation bytes than none.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <thread>
#include <tuple>

#include "moe/ep_dispatcher.h"
#include "src/comm/process_grid.h"
#include "src/comm/thread_communicator.h"
#include "src/model/transformer.h"
#include "src/train/model_state.h"
#include "tests/unit/model_fixtures.h"

namespace moe {
namespace {

// Four layers: dense, MoE (one shared expert), dense, MoE. Router jitter is on: a recomputed
// router must draw the same noise. Four heads, two kv heads, so tp 2 splits them.
Config recompute_config(const std::string& router) {
  Config c = test::tiny_model_config(/*top_k=*/2, /*shared=*/1);
  c.model.n_layers = 4;
  c.model.d_model = 16;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.moe.router = router;
  c.moe.router_jitter = 0.1;
  if (router == "expert_choice") c.moe.capacity_factor = 0.7;
  return c;
}

// This rank's place: null groups = one rank.
struct Place {
  comm::Communicator* tp = nullptr;
  comm::Communicator* dp = nullptr;
  comm::Communicator* ep = nullptr;
};

struct StepResult {
  StepLosses losses;
  std::vector<float> grads;
  std::vector<LayerLoadStats> stats;
  int64_t activation_bytes = 0;
  int64_t sent_bytes = 0;  // by the ep dispatchers over the step
};

// One forward and (unless forward_only) backward of this rank's rows of `tokens`.
StepResult run_step(Config c, const std::string& mode, const Place& at, int64_t rows,
                    const std::vector<int32_t>& tokens, bool forward_only = false) {
  c.parallel.recompute = mode;
  const int dp_rank = at.dp ? at.dp->rank() : 0;
  ModelState m(c, ExpertShard{at.ep ? at.ep->size() : 1, at.ep ? at.ep->rank() : 0},
               TensorShard{at.tp ? at.tp->size() : 1, at.tp ? at.tp->rank() : 0});
  test::randomize(m, 17);
  Transformer net(c, rows, [&](int64_t) -> std::unique_ptr<TokenDispatcher> {
    if (at.ep) return std::make_unique<EpDispatcher>(*at.ep, at.dp, c.moe.num_experts);
    return std::make_unique<LocalDispatcher>(at.dp);
  }, at.tp);
  const int64_t T = c.model.seq_len;
  net.set_routing_step(3, dp_rank * rows * T, /*training=*/true);
  SumReducer reduce;
  if (at.dp) reduce = [&](std::vector<double>& v) { at.dp->allreduce_sum(v.data(), int64_t(v.size())); };
  StepResult r;
  r.losses = net.forward(tokens.data() + dp_rank * rows * (T + 1), m.p, reduce);
  if (!forward_only) net.backward(m.p, m.g, double(tokens.size() / size_t(T + 1)) * double(T));
  r.grads.assign(m.grads.begin(), m.grads.end());
  for (const LayerLoadStats* s : net.load_stats()) r.stats.push_back(*s);
  r.activation_bytes = net.activation_bytes();
  for (const TokenDispatcher* d : net.moe_dispatchers())
    if (const auto* epd = dynamic_cast<const EpDispatcher*>(d))
      for (int64_t b : epd->sent_bytes()) r.sent_bytes += b;
  return r;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

void expect_identical(const StepResult& got, const StepResult& ref, const std::string& what) {
  EXPECT_TRUE(same_bits(got.losses.lm_sum, ref.losses.lm_sum)) << what << ": " << got.losses.lm_sum << " vs "
                                                                 << ref.losses.lm_sum;
  EXPECT_TRUE(same_bits(got.losses.aux, ref.losses.aux)) << what;
  EXPECT_TRUE(same_bits(got.losses.z, ref.losses.z)) << what;
  ASSERT_EQ(got.grads.size(), ref.grads.size()) << what;
  EXPECT_EQ(std::memcmp(got.grads.data(), ref.grads.data(), sizeof(float) * ref.grads.size()), 0) << what;
  ASSERT_EQ(got.stats.size(), ref.stats.size()) << what;
  for (size_t l = 0; l < ref.stats.size(); ++l) {
    EXPECT_EQ(got.stats[l].tokens_per_expert, ref.stats[l].tokens_per_expert) << what << " layer " << l;
    EXPECT_EQ(got.stats[l].dropped, ref.stats[l].dropped) << what;
    EXPECT_TRUE(same_bits(got.stats[l].entropy, ref.stats[l].entropy)) << what;
    EXPECT_TRUE(same_bits(got.stats[l].aux_loss, ref.stats[l].aux_loss)) << what;
    EXPECT_EQ(got.stats[l].bias, ref.stats[l].bias) << what;
  }
  // A step with nothing in it would compare equal too.
  double sq = 0;
  for (float g : ref.grads) sq += double(g) * g;
  EXPECT_GT(sq, 0.0) << what;
  EXPECT_GT(ref.losses.aux, 0.0) << what;
}

void on_threads(int n, const std::function<void(comm::Communicator&)>& body) {
  auto group = comm::make_thread_group(n, "world");
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(*group[size_t(r)]); });
  for (auto& t : threads) t.join();
}

using ModeRouter = std::tuple<std::string, std::string>;
class RecomputeEquality : public ::testing::TestWithParam<ModeRouter> {};

TEST_P(RecomputeEquality, OneRank) {
  const auto& [mode, router] = GetParam();
  const Config c = recompute_config(router);
  const auto tokens = test::random_ints(2 * (c.model.seq_len + 1), 3, 0, int32_t(c.model.vocab_size));
  expect_identical(run_step(c, mode, {}, 2, tokens), run_step(c, "none", {}, 2, tokens), mode + " " + router);
}

TEST_P(RecomputeEquality, TensorParallelTwo) {
  const auto& [mode, router] = GetParam();
  Config c = recompute_config(router);
  c.parallel.tp = 2;
  const auto tokens = test::random_ints(2 * (c.model.seq_len + 1), 4, 0, int32_t(c.model.vocab_size));
  on_threads(2, [&](comm::Communicator& tp) {
    const StepResult ref = run_step(c, "none", {&tp}, 2, tokens);
    expect_identical(run_step(c, mode, {&tp}, 2, tokens), ref, mode + " " + router + " tp rank " +
                                                                   std::to_string(tp.rank()));
  });
}

// ep 2 over dp 2 (two ranks): block re-runs the dispatch and combine all-to-alls in backward, in
// the same order on both ranks; attention and moe send nothing more.
TEST_P(RecomputeEquality, ExpertParallelTwo) {
  const auto& [mode, router] = GetParam();
  Config c = recompute_config(router);
  c.parallel.dp = 2;
  c.parallel.ep = 2;
  const auto tokens = test::random_ints(4 * (c.model.seq_len + 1), 5, 0, int32_t(c.model.vocab_size));
  on_threads(2, [&](comm::Communicator& world) {
    const comm::ProcessGrid grid = comm::make_process_grid(world, {1, 2, 1, 2, 1});
    const Place at{nullptr, grid.dp.get(), grid.ep.get()};
    const StepResult ref = run_step(c, "none", at, 2, tokens);
    const StepResult got = run_step(c, mode, at, 2, tokens);
    expect_identical(got, ref, mode + " " + router + " rank " + std::to_string(world.rank()));
    const StepResult fwd = run_step(c, "none", at, 2, tokens, /*forward_only=*/true);
    EXPECT_GT(fwd.sent_bytes, 0);
    EXPECT_EQ(got.sent_bytes, ref.sent_bytes + (mode == "block" ? fwd.sent_bytes : 0)) << mode;
  });
}

INSTANTIATE_TEST_SUITE_P(Modes, RecomputeEquality,
                         ::testing::Combine(::testing::Values("block", "attention", "moe"),
                                            ::testing::Values("softmax", "expert_choice")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

TEST(RecomputeMemory, EachModeKeepsLess) {
  const Config c = recompute_config("softmax");  // dropless: every MoE layer has N*K expert rows
  const auto tokens = test::random_ints(2 * (c.model.seq_len + 1), 6, 0, int32_t(c.model.vocab_size));
  auto bytes = [&](const std::string& mode) { return run_step(c, mode, {}, 2, tokens).activation_bytes; };
  const int64_t none = bytes("none"), block = bytes("block"), attention = bytes("attention"), moe = bytes("moe");
  EXPECT_LT(attention, none);
  EXPECT_LT(moe, none);
  EXPECT_LT(block, attention);
  EXPECT_LT(block, moe);

  const Dims d = make_dims(c, 2);
  const int64_t M = d.N * d.K, L = d.L, ND = d.N * d.D;
  // moe: the experts' a, b, h, out and the shared experts' a, b, h of all but one MoE layer (2).
  EXPECT_EQ(none - moe, 4 * (M * (3 * d.Fe + d.D) + 3 * d.N * d.Fs));
  // attention: L copies of the sub-layer's activations become L inputs plus one full set.
  const int64_t attn = 2 * ND + d.N + 2 * d.N * d.H * d.hd + 2 * d.N * d.KV * d.hd + d.B * d.H * d.T * d.T;
  EXPECT_EQ(none - attention, 4 * ((L - 1) * attn - L * ND));
}

}  // namespace
}  // namespace moe
