// Profile statistics against counts computed here from the routing map of a real MoE layer
// forward, the phase timer and its scopes, and the Chrome trace file.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/model/phase_timer.h"
#include "src/model/transformer.h"
#include "src/train/config.h"
#include "src/train/load_balance_hook.h"
#include "src/train/load_balance_recorder.h"
#include "src/train/profile_data.h"
#include "src/train/profile_trace.h"
#include "tests/unit/test_profile_fixtures.h"
#include "tests/unit/test_routing_fixtures.h"

namespace moe {
namespace {

using ProfileLayer = test::ProfileTempDir;

// Capacity 1.0 with top-2 of 4 experts drops some assignments of this input.
Config capped_config() {
  Config c = test::tiny_model_config(2, 0);
  c.moe.capacity_factor = 1.0;
  return c;
}

TEST_F(ProfileLayer, StatsAndRecorderMatchCountsFromTheRoutingMap) {
  test::LayerCase lc(capped_config(), 6, 11);
  lc.loss();
  const Dims& d = lc.d;
  // Count the routing map (top-k expert of every token) independently of the layer's stats.
  std::vector<int64_t> counts(size_t(d.E), 0);
  for (int64_t i = 0; i < d.N * d.K; ++i) ++counts[size_t(lc.s.router.topk_idx[size_t(i)])];
  const auto cap = int64_t(std::ceil(lc.c.moe.capacity_factor * double(d.N * d.K) / double(d.E)));
  int64_t dropped = 0;
  for (int64_t n : counts) dropped += std::max<int64_t>(0, n - cap);
  ASSERT_GT(dropped, 0) << "the input should overflow an expert; pick another seed";

  const LayerLoadStats& st = lc.s.stats;
  EXPECT_EQ(st.tokens_per_expert, counts);
  EXPECT_EQ(st.dropped, dropped);
  EXPECT_EQ(st.assignments, d.N * d.K);
  EXPECT_EQ(int64_t(lc.s.plan.rows.size()), d.N * d.K - dropped) << "rows kept by the dispatch plan";

  const std::string path = file("load_balance.h5");
  {
    LoadBalanceRecorder rec(path, {1}, d.E, 1, 0);
    rec.record(1, {&st}, {}, {});
  }
  const profile::LoadBalanceData lb = profile::read_load_balance(path);
  ASSERT_EQ(lb.rows(), 1);
  EXPECT_EQ(lb.tokens_per_expert, counts);
  EXPECT_EQ(lb.dropped, (std::vector<int64_t>{dropped}));
  const int64_t mx = *std::max_element(counts.begin(), counts.end());
  EXPECT_DOUBLE_EQ(lb.max_over_mean[0], double(mx) * double(d.E) / double(d.N * d.K));
  EXPECT_DOUBLE_EQ(lb.entropy[0], st.entropy);
}

TEST(ProfilePhaseTimer, NestedScopesAreExclusiveAndSpansInclusive) {
  PhaseTimer t;
  t.set_tracing(true);
  const auto before = PhaseTimer::Clock::now();
  {
    const ActivePhaseTimer active(&t);
    PhaseScope outer(Phase::dispatch);
    PhaseScope inner(Phase::comm_wait);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double wall = std::chrono::duration<double>(PhaseTimer::Clock::now() - before).count();
  EXPECT_GE(t.seconds(Phase::comm_wait), 0.002);
  EXPECT_LE(t.seconds(Phase::dispatch) + t.seconds(Phase::comm_wait), wall);
  EXPECT_EQ(t.seconds(Phase::attention), 0.0);
  ASSERT_EQ(t.spans().size(), 2u);
  EXPECT_EQ(t.spans()[0].phase, Phase::comm_wait);  // closed first
  EXPECT_EQ(t.spans()[1].phase, Phase::dispatch);
  EXPECT_LE(t.spans()[1].begin, t.spans()[0].begin);
  EXPECT_GE(t.spans()[1].end, t.spans()[0].end);
  EXPECT_EQ(active_phase_timer(), nullptr) << "the previous (none) is restored";
  t.reset();
  EXPECT_EQ(t.seconds(Phase::comm_wait), 0.0);
  EXPECT_TRUE(t.spans().empty());
}

TEST(ProfilePhaseTimer, ScopesWithoutAnActiveTimerDoNothing) {
  PhaseTimer t;
  { PhaseScope s(Phase::experts); }
  EXPECT_EQ(t.seconds(Phase::experts), 0.0);
}

TEST(ProfilePhaseTimer, TransformerStepTimesEveryModelPhase) {
  const Config c = test::tiny_model_config(2, 1);
  ModelState m(c);
  test::randomize(m, 3);
  Transformer net(c, 2);
  std::vector<int32_t> tokens(size_t(2 * (c.model.seq_len + 1)));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i % size_t(c.model.vocab_size));
  PhaseTimer& t = net.phase_timer();
  t.set_tracing(true);
  {
    const ActivePhaseTimer active(&t);
    net.forward(tokens.data(), m.p, {});
    net.backward(m.p, m.g, 10.0);
  }
  std::vector<int> seen(kNumPhases, 0);
  for (const PhaseSpan& s : t.spans()) ++seen[size_t(s.phase)];
  // 2 layers of attention forward + backward; 1 MoE layer: route, dispatch, combine twice each
  // (forward, backward); experts: routed + shared, forward and backward.
  EXPECT_EQ(seen[int(Phase::attention)], 4);
  EXPECT_EQ(seen[int(Phase::route)], 2);
  EXPECT_EQ(seen[int(Phase::dispatch)], 2);
  EXPECT_EQ(seen[int(Phase::combine)], 2);
  EXPECT_EQ(seen[int(Phase::experts)], 4);
  EXPECT_EQ(seen[int(Phase::comm_wait)], 0) << "no reducer, no communication";
  EXPECT_EQ(seen[int(Phase::optimizer)], 0);
  const PhaseTimes pt = phase_times(t, 1.0);
  EXPECT_EQ(pt.step, 1.0);
  EXPECT_EQ(pt.attention, t.seconds(Phase::attention));
  EXPECT_EQ(pt.experts, t.seconds(Phase::experts));
}

TEST_F(ProfileLayer, TraceFileHasCompleteEventsOfTheChosenSteps) {
  EXPECT_EQ(PhaseTrace::rank_path("a/trace.json", 3), "a/trace.rank3.json");
  EXPECT_EQ(PhaseTrace::rank_path("a/trace", 0), "a/trace.rank0.json");
  Config c;
  c.profile.trace = "t.json";
  c.profile.trace_first = 2;
  c.profile.trace_last = 3;
  PhaseTimer t;
  {
    PhaseTrace tr(c, dir_.string(), 1);
    EXPECT_EQ(tr.path(), file("t.rank1.json"));
    t.set_tracing(true);
    const ActivePhaseTimer active(&t);
    for (int64_t step = 1; step <= 4; ++step) {
      EXPECT_EQ(tr.wants(step), step == 2 || step == 3);
      t.reset();
      const auto b = PhaseTimer::Clock::now();
      {
        PhaseScope d(Phase::dispatch);
        PhaseScope w(Phase::comm_wait);
      }
      tr.add_step(step, b, PhaseTimer::Clock::now(), t.spans());
    }
  }
  std::ifstream in(file("t.rank1.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  int complete = 0, comm = 0;
  for (const auto& e : j["traceEvents"]) {
    EXPECT_EQ(e["pid"], 1);
    if (e["ph"] != "X") continue;
    ++complete;
    const int64_t step = e["args"]["step"];
    EXPECT_TRUE(step == 2 || step == 3) << e.dump();
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    if (e["name"] == "comm_wait") {
      ++comm;
      EXPECT_EQ(e["tid"], 1);
      EXPECT_EQ(e["cat"], "communication");
    } else {
      EXPECT_EQ(e["tid"], 0);
    }
  }
  EXPECT_EQ(complete, 6) << "step, dispatch and comm_wait for each of 2 steps";
  EXPECT_EQ(comm, 2);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

TEST(ProfileConfigKeys, TraceStepsParseRoundTripAndRefuseBadRanges) {
  const Config c = parse_config("profile:\n  trace: t.json\n  trace_steps: 5-7\n", "p.yaml", {});
  EXPECT_EQ(c.profile.trace, "t.json");
  EXPECT_EQ(c.profile.trace_first, 5);
  EXPECT_EQ(c.profile.trace_last, 7);
  const Config one = parse_config("", "p.yaml", {"profile.trace_steps=4"});
  EXPECT_EQ(one.profile.trace_first, 4);
  EXPECT_EQ(one.profile.trace_last, 4);
  const Config back = parse_config(dump_config(c), "dumped.yaml", {});
  EXPECT_EQ(back.profile.trace_first, 5);
  EXPECT_EQ(back.profile.trace_last, 7);
  EXPECT_EQ(back.profile.trace, "t.json");
  for (const char* bad : {"7-5", "0-2", "a-b", "3-", "x"}) {
    try {
      parse_config("", "p.yaml", {std::string("profile.trace_steps=") + bad});
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("profile.trace_steps"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace moe
