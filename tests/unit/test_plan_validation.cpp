// The planner's memory per rank against the trainer's own accounting (the mem_bytes of
// metrics.jsonl: weights, AdamW moments, gradients and Transformer::activation_bytes) for the
// layouts scripts/bench_plan.sh times, with bench_cpu.yaml's shapes (one of its 8 layers and half
// its sequence, to stay fast). Ranks are threads over an in-process group, so no mpirun is needed.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "moe/ep_dispatcher.h"
#include "src/comm/process_grid.h"
#include "src/comm/thread_communicator.h"
#include "src/model/transformer.h"
#include "src/plan/hardware.h"
#include "src/plan/memory.h"
#include "src/plan/planner.h"
#include "src/train/model_state.h"

namespace moe {
namespace {

Config bench_config(int64_t dp, int64_t ep) {
  return load_config(MOE_SOURCE_DIR "/configs/bench_cpu.yaml",
                     {"model.n_layers=1", "model.seq_len=128", "train.batch_size=4", "parallel.dp=" + std::to_string(dp),
                      "parallel.ep=" + std::to_string(ep)});
}

// Rank 0's mem_bytes after one forward, as the trainer computes it (src/train/trainer.cpp).
double trainer_mem_bytes(const Config& c) {
  const int n = int(c.parallel.dp);
  auto world = comm::make_thread_group(n, "world");
  std::vector<double> mem(size_t(n), 0.0);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      const comm::ProcessGrid grid =
          comm::make_process_grid(*world[size_t(r)], {1, int(c.parallel.dp), 1, int(c.parallel.ep), 1});
      ModelState m(c, ExpertShard{c.parallel.ep, grid.coord.ep});
      init_params(m.table, m.params.data(), c.train.seed);
      const int64_t rows = c.train.batch_size / c.parallel.dp;
      Transformer net(c, rows, [&](int64_t) -> std::unique_ptr<TokenDispatcher> {
        if (c.parallel.ep > 1) return std::make_unique<EpDispatcher>(*grid.ep, grid.dp.get(), c.moe.num_experts);
        return std::make_unique<LocalDispatcher>(grid.dp.get());
      });
      std::vector<int32_t> tokens(size_t(rows * (c.model.seq_len + 1)));
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 37 + size_t(r) * 11) % 251);
      net.set_routing_step(0, int64_t(r) * rows * c.model.seq_len, true);
      const SumReducer reduce = [&](std::vector<double>& v) { grid.dp->allreduce_sum(v.data(), int64_t(v.size())); };
      net.forward(tokens.data(), m.p, reduce);
      mem[size_t(r)] = double(3 * m.params.size() * sizeof(float) + m.grads.size() * sizeof(float)) +
                       double(net.activation_bytes());
    });
  for (auto& t : threads) t.join();
  return mem[0];
}

TEST(PlanValidation, MemoryMatchesTheTrainerForTheBenchLayouts) {
  plan::Hardware hw = plan::load_hardware(MOE_SOURCE_DIR "/configs/hardware/cpu_local.yaml");
  for (auto [dp, ep] : {std::pair{1, 1}, {2, 1}, {2, 2}, {4, 1}, {4, 2}, {4, 4}}) {
    const Config c = bench_config(dp, ep);
    const plan::MemoryBreakdown planned = plan::estimate_memory(c, hw, plan::a2a_buffer_factor(c, 1.0));
    const double measured = trainer_mem_bytes(c);
    // The bound of the issue, on the total the bench compares.
    EXPECT_NEAR(planned.total() / measured, 1.0, 0.10) << "dp " << dp << " ep " << ep;
    // Tighter, on what both count: the planner adds the logits' gradient and the all-to-all
    // buffers, which the trainer's figure leaves out; the rest differs by the routing's uneven
    // split of expert rows (the planner assumes an even one).
    const double tokens = double(c.train.batch_size / dp * c.model.seq_len);
    const double extra = tokens * double(c.model.vocab_size) * 4.0 + planned.a2a_buffers;
    EXPECT_NEAR((planned.total() - extra) / measured, 1.0, 0.05) << "dp " << dp << " ep " << ep;
  }
}

TEST(PlanValidation, OversubscribedCoresSlowEveryRank) {
  plan::Hardware hw = plan::load_hardware(MOE_SOURCE_DIR "/configs/hardware/cpu_local.yaml");
  hw.cores = 2;
  hw.autogroup = false;  // thread-fair sharing
  hw.background_load = 0;
  hw.thread_efficiency = 0.8;
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 2, 1), 1.0);
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 4, 1), 0.5);
  EXPECT_DOUBLE_EQ(plan::rank_speed(hw, 1, 2), 1.8);
  EXPECT_DOUBLE_EQ(plan::rank_speed(hw, 2, 2), 0.5 * (1 + 0.8 * 0.5));  // 4 threads on 2 cores
  EXPECT_EQ(plan::default_threads(hw, 1), 2);
  EXPECT_EQ(plan::default_threads(hw, 4), 1);
  hw.background_load = 2;
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 2, 1), 0.5);
  // The same work on 4 ranks of 2 cores takes as long as on 2 ranks (plus communication).
  hw.background_load = 0;
  const Config two = bench_config(2, 1), four = bench_config(4, 1);
  const plan::StepBreakdown s2 = plan::estimate_step(two, hw, 1.0, 1), s4 = plan::estimate_step(four, hw, 1.0, 1);
  EXPECT_NEAR(s4.compute / s2.compute, 1.0, 0.05);
  EXPECT_GT(s4.total(), s2.total());
  // GPU profiles (no `cores`) never share.
  hw.cores = 0;
  EXPECT_DOUBLE_EQ(plan::rank_speed(hw, 64, 4), 1.0);
}

// Linux autogroup: the cores are shared between sessions, so the ranks of one mpirun split one
// session's part, however many there are.
TEST(PlanValidation, AutogroupSharesCoresBySession) {
  plan::Hardware hw = plan::load_hardware(MOE_SOURCE_DIR "/configs/hardware/cpu_local.yaml");
  hw.cores = 2;
  hw.autogroup = true;
  hw.background_load = 0;
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 1, 1), 1.0);
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 2, 1), 1.0);
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 4, 1), 0.5);
  hw.background_load = 1;  // one other busy session on each core
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 1, 1), 0.5);
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 2, 1), 0.5);
  EXPECT_DOUBLE_EQ(plan::core_share(hw, 4, 1), 0.25);  // the session's one core of two, over 4 ranks
  // Thread-fair sharing would give the 4 ranks more of the machine than the 2.
  hw.autogroup = false;
  hw.background_load = 2;
  EXPECT_GT(4 * plan::core_share(hw, 4, 1), 2 * plan::core_share(hw, 2, 1));
  // The profile round-trips the flag.
  hw.autogroup = true;
  EXPECT_TRUE(plan::parse_hardware(plan::dump_hardware(hw, ""), "dump").autogroup);
}

}  // namespace
}  // namespace moe
