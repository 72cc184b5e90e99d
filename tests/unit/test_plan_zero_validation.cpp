// The planner's per-rank memory against what `moe train` itself reports (rank 0's mem_bytes in
// metrics.jsonl: parameters, gradients and parameters resident at the step's peak under ZeRO 2/3,
// AdamW moments, activations, gather staging) for layouts covering ZeRO 0-3, tp, ep, expert
// tensor parallelism over the tp group and over dp ranks, ZeRO with tp, and recomputation. The
// trainer runs in-process, one thread per rank over a thread group, one step of a 2-layer MoE.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "src/comm/thread_communicator.h"
#include "src/plan/hardware.h"
#include "src/plan/memory.h"
#include "src/plan/planner.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

struct LayoutCase {
  int64_t dp, tp, ep, etp, zero;
  const char* recompute;
};

std::string describe(const LayoutCase& l) {
  return "dp" + std::to_string(l.dp) + "_tp" + std::to_string(l.tp) + "_ep" + std::to_string(l.ep) + "_etp" +
         std::to_string(l.etp) + "_zero" + std::to_string(l.zero) + "_" + l.recompute;
}

const std::string& corpus() {
  static const std::string path = test::make_corpus(test::fresh_dir("plan_zero_corpus"));
  return path;
}

// A 2-layer MoE whose experts dominate the weights, as in bench_cpu.yaml, small enough for a step
// on 4 thread ranks in well under a second.
Config layout_config(const LayoutCase& l) {
  Config c = test::small_train_config(corpus());
  c.model.d_model = 128;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.seq_len = 64;
  c.model.ffn_hidden = 256;
  c.model.moe_every = 1;
  c.moe.num_experts = 8;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 256;
  c.train.steps = 1;
  c.train.batch_size = 8;
  c.train.eval_every = 0;
  c.parallel.dp = l.dp;
  c.parallel.tp = l.tp;
  c.parallel.ep = l.ep;
  c.parallel.etp = l.etp;
  c.parallel.zero_stage = l.zero;
  c.parallel.recompute = l.recompute;
  return c;
}

// Rank 0's memory record of a one-step run.
nlohmann::json trainer_memory(const Config& c, const std::string& run_dir) {
  const int n = int(c.parallel.dp * c.parallel.tp);
  auto world = comm::make_thread_group(n, "world");
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      TrainOptions o;
      o.run_dir = run_dir;
      o.quiet = true;
      train(c, o, *world[size_t(r)]);
    });
  for (auto& t : threads) t.join();
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last);
}

class PlanZeroValidation : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(PlanZeroValidation, MemoryWithinTenPercentOfTheTrainer) {
  const LayoutCase& l = GetParam();
  const Config c = layout_config(l);
  const plan::Hardware hw = plan::load_hardware(MOE_SOURCE_DIR "/configs/hardware/cpu_local.yaml");
  const plan::MemoryBreakdown m = plan::estimate_memory(c, hw, plan::a2a_buffer_factor(c, 1.0));
  const nlohmann::json rec = trainer_memory(c, test::fresh_dir("plan_zero_" + describe(l)));
  // The trainer's total leaves out two transient buffers the planner counts: the logits'
  // gradient (backward scratch) and the all-to-all send and receive buffers.
  const double tokens = double(c.train.batch_size / c.parallel.dp * c.model.seq_len);
  const double scratch = tokens * double(c.model.vocab_size) * 4.0 + m.a2a_buffers;
  const double measured = rec["mem_bytes"].get<double>();
  std::printf("%-36s planned / trainer: total %.3f, params %.3f, grads %.3f, activations %.3f\n", describe(l).c_str(),
              (m.total() - scratch) / measured, m.params / rec["mem_params"].get<double>(),
              m.grads / rec["mem_grads"].get<double>(),
              (m.activations - tokens * double(c.model.vocab_size) * 4.0) / rec["mem_activations"].get<double>());
  EXPECT_NEAR((m.total() - scratch) / measured, 1.0, 0.10)
      << describe(l) << " planned params " << m.params << " grads " << m.grads << " optimizer " << m.optimizer
      << " activations " << m.activations << " a2a " << m.a2a_buffers << " staging " << m.staging << "; measured "
      << rec.dump();
  // Each part the ZeRO stage changes, on its own.
  EXPECT_NEAR(m.params / rec["mem_params"].get<double>(), 1.0, 0.10) << describe(l);
  EXPECT_NEAR(m.grads / rec["mem_grads"].get<double>(), 1.0, 0.10) << describe(l);
  EXPECT_NEAR(m.optimizer / rec["mem_optimizer"].get<double>(), 1.0, 0.02) << describe(l);
  if (l.zero >= 1) {
    EXPECT_NEAR(m.staging / rec["mem_comm"].get<double>(), 1.0, 0.10) << describe(l);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, PlanZeroValidation,
    ::testing::Values(LayoutCase{1, 1, 1, 1, 0, "none"}, LayoutCase{2, 1, 1, 1, 1, "none"},
                      LayoutCase{2, 1, 2, 1, 2, "none"}, LayoutCase{2, 1, 2, 1, 3, "none"},
                      LayoutCase{4, 1, 2, 1, 3, "none"}, LayoutCase{1, 2, 1, 1, 0, "none"},
                      LayoutCase{2, 2, 2, 1, 2, "none"}, LayoutCase{2, 2, 2, 2, 3, "none"},
                      LayoutCase{2, 1, 1, 2, 0, "none"}, LayoutCase{4, 1, 2, 2, 1, "none"},
                      LayoutCase{2, 1, 2, 1, 0, "block"}, LayoutCase{2, 1, 1, 2, 2, "moe"},
                      LayoutCase{1, 2, 1, 2, 1, "attention"}),
    [](const ::testing::TestParamInfo<LayoutCase>& i) { return describe(i.param); });

}  // namespace
}  // namespace moe
