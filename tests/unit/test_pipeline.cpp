// Pipeline parallelism without ranks: schedules (op order, in-flight bound), stage ownership, the
// per-stage activation memory, and micro-batching (gradient accumulation) in process.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <tuple>
#include <nlohmann/json.hpp>

#include "src/comm/thread_communicator.h"
#include "src/model/transformer.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/pipeline_layout.h"
#include "src/parallel/pipeline_schedule.h"
#include "src/train/trainer.h"
#include "tests/unit/train_fixtures.h"

namespace moe {
namespace {

std::string render(const std::vector<PipeOp>& ops) {
  std::string s;
  for (const PipeOp& op : ops) {
    s += op.kind == PipeOpKind::forward ? 'F' : 'B';
    s += std::to_string(op.micro);
    s += ' ';
  }
  return s;
}

TEST(PipelineSchedule, GpipeRunsAllForwardsThenAllBackwards) {
  for (int64_t stage = 0; stage < 4; ++stage)
    EXPECT_EQ(render(pipeline_schedule("gpipe", 4, stage, 3)), "F0 F1 F2 B0 B1 B2 ");
}

TEST(PipelineSchedule, OneFOneBWarmsUpThenAlternates) {
  // pp 4, m 6: stage s warms up with pp - s - 1 forwards.
  EXPECT_EQ(render(pipeline_schedule("1f1b", 4, 0, 6)), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5 ");
  EXPECT_EQ(render(pipeline_schedule("1f1b", 4, 1, 6)), "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5 ");
  EXPECT_EQ(render(pipeline_schedule("1f1b", 4, 2, 6)), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5 ");
  EXPECT_EQ(render(pipeline_schedule("1f1b", 4, 3, 6)), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 ");
  // Fewer micro-batches than stages: the warm-up is cut at m.
  EXPECT_EQ(render(pipeline_schedule("1f1b", 4, 0, 2)), "F0 F1 B0 B1 ");
  // pp 1: gradient accumulation, one micro-batch at a time.
  EXPECT_EQ(render(pipeline_schedule("1f1b", 1, 0, 3)), "F0 B0 F1 B1 F2 B2 ");
}

TEST(PipelineSchedule, EveryMicroBatchRunsOnceEachWayForwardFirst) {
  for (const char* kind : {"gpipe", "1f1b"})
    for (int64_t pp : {1, 2, 3, 4, 8})
      for (int64_t m : {1, 2, 3, 4, 8, 13})
        for (int64_t s = 0; s < pp; ++s) {
          const auto ops = pipeline_schedule(kind, pp, s, m);
          ASSERT_EQ(int64_t(ops.size()), 2 * m);
          std::vector<int> fwd(size_t(m), 0), bwd(size_t(m), 0);
          int64_t next_b = 0;
          for (const PipeOp& op : ops) {
            if (op.kind == PipeOpKind::forward) {
              ++fwd[size_t(op.micro)];
            } else {
              ASSERT_EQ(fwd[size_t(op.micro)], 1) << kind << " backward before forward";
              ASSERT_EQ(op.micro, next_b++) << kind << " backwards out of order";
              ++bwd[size_t(op.micro)];
            }
          }
          for (int64_t j = 0; j < m; ++j) ASSERT_TRUE(fwd[size_t(j)] == 1 && bwd[size_t(j)] == 1);
        }
}

// The memory bound of the issue: under 1f1b stage s keeps at most pp - s micro-batches alive.
TEST(PipelineSchedule, InFlightBound) {
  for (int64_t pp : {1, 2, 4, 8})
    for (int64_t m : {1, 2, 4, 8, 16})
      for (int64_t s = 0; s < pp; ++s) {
        EXPECT_EQ(max_in_flight(pipeline_schedule("1f1b", pp, s, m)), std::min(m, pp - s));
        EXPECT_LE(max_in_flight(pipeline_schedule("1f1b", pp, s, m)), pp - s);
        EXPECT_EQ(max_in_flight(pipeline_schedule("gpipe", pp, s, m)), m);
      }
  EXPECT_DOUBLE_EQ(theoretical_bubble(4, 8), 3.0 / 11.0);
  EXPECT_DOUBLE_EQ(theoretical_bubble(1, 8), 0.0);
}

// Runs every stage's schedule against the others: an op runs once its input exists (forward: the
// previous virtual stage's forward of the micro-batch; backward: the next virtual stage's
// backward, or on the last virtual stage its own forward). Receives block, sends do not, so the
// schedules must all run to the end (no deadlock).
bool runs_to_completion(const std::string& kind, int64_t pp, int64_t m, int64_t v) {
  const int64_t V = pp * v;
  std::vector<std::vector<PipeOp>> ops;
  for (int64_t s = 0; s < pp; ++s) ops.push_back(pipeline_schedule(kind, pp, s, m, v));
  std::set<std::tuple<bool, int64_t, int64_t>> done;  // (forward, virtual stage, micro-batch)
  std::vector<size_t> next(size_t(pp), 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int64_t s = 0; s < pp; ++s) {
      while (next[size_t(s)] < ops[size_t(s)].size()) {
        const PipeOp& op = ops[size_t(s)][next[size_t(s)]];
        const int64_t vs = op.chunk * pp + s;
        const bool fwd = op.kind == PipeOpKind::forward;
        const bool ready = fwd ? vs == 0 || done.count({true, vs - 1, op.micro})
                               : done.count({vs == V - 1, vs == V - 1 ? vs : vs + 1, op.micro});
        if (!ready) break;
        done.insert({fwd, vs, op.micro});
        ++next[size_t(s)];
        progress = true;
      }
    }
  }
  for (int64_t s = 0; s < pp; ++s)
    if (next[size_t(s)] != ops[size_t(s)].size()) return false;
  return true;
}

TEST(PipelineSchedule, NoStageWaitsForever) {
  for (const char* kind : {"gpipe", "1f1b"})
    for (int64_t pp : {1, 2, 3, 4})
      for (int64_t m : {1, 2, 3, 5, 8}) EXPECT_TRUE(runs_to_completion(kind, pp, m, 1)) << kind << pp << " " << m;
  for (int64_t pp : {2, 4})
    for (int64_t v : {2, 3})
      for (int64_t m : {pp, 2 * pp, 3 * pp}) EXPECT_TRUE(runs_to_completion("1f1b", pp, m, v)) << pp << v << m;
}

// Interleaved 1F1B: every (chunk, micro-batch) runs once each way; within a chunk forwards and
// backwards run in micro-batch order (so a chunk's in-flight micro-batches are a window and
// micro-batch j can use slot j % slots); warm-up as in Megatron-Core.
TEST(PipelineSchedule, InterleavedOneFOneB) {
  // pp 2, v 2, m 4, stage 0: warm-up 2 (2 - 0 - 1) + (2 - 1) 2 = 4 forwards.
  const auto ops = pipeline_schedule("1f1b", 2, 0, 4, 2);
  ASSERT_EQ(ops.size(), 16u);
  EXPECT_EQ(ops[0], (PipeOp{PipeOpKind::forward, 0, 0}));
  EXPECT_EQ(ops[1], (PipeOp{PipeOpKind::forward, 1, 0}));
  EXPECT_EQ(ops[2], (PipeOp{PipeOpKind::forward, 0, 1}));
  EXPECT_EQ(ops[3], (PipeOp{PipeOpKind::forward, 1, 1}));
  EXPECT_EQ(ops[4], (PipeOp{PipeOpKind::forward, 2, 0}));
  EXPECT_EQ(ops[5], (PipeOp{PipeOpKind::backward, 0, 1}));  // the last chunk's backward comes first
  for (int64_t pp : {2, 4})
    for (int64_t v : {2, 3})
      for (int64_t m : {pp, 2 * pp})
        for (int64_t s = 0; s < pp; ++s) {
          const auto all = pipeline_schedule("1f1b", pp, s, m, v);
          ASSERT_EQ(int64_t(all.size()), 2 * m * v);
          for (int64_t c = 0; c < v; ++c) {
            int64_t next_f = 0, next_b = 0;
            for (const PipeOp& op : all) {
              if (op.chunk != c) continue;
              if (op.kind == PipeOpKind::forward) ASSERT_EQ(op.micro, next_f++);
              else ASSERT_EQ(op.micro, next_b++);
              ASSERT_LE(next_b, next_f);
            }
            ASSERT_EQ(next_f, m);
            ASSERT_EQ(next_b, m);
            EXPECT_LE(max_in_flight(all, c), m);
          }
        }
  EXPECT_DOUBLE_EQ(theoretical_bubble(4, 8, 2), 3.0 / 19.0);
}

Config four_layer_config() {
  Config c;
  c.model.vocab_size = 64;
  c.model.d_model = 16;
  c.model.n_layers = 4;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 2;
  c.model.seq_len = 8;
  c.model.ffn_hidden = 32;
  c.model.moe_every = 2;  // blocks 1 and 3 are MoE
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 16;
  return c;
}

TEST(PipelineLayout, EvenSplitAndExplicitLayout) {
  Config c = four_layer_config();
  c.parallel.pp = 2;
  StageLayout even = make_stage_layout(c);
  EXPECT_EQ(even.first, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(even.stage_of_block(1), 0);
  EXPECT_EQ(even.stage_of_block(2), 1);
  EXPECT_EQ(even.owner_of("tok_embeddings.weight"), 0);
  EXPECT_EQ(even.owner_of("layers.3.moe.experts.w1"), 1);
  EXPECT_EQ(even.owner_of("norm.weight"), 1);
  EXPECT_EQ(even.owner_of("output.weight"), 1);
  c.parallel.pp_layout = {1, 3};
  StageLayout uneven = make_stage_layout(c);
  EXPECT_EQ(uneven.first, (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(uneven.owner_of("layers.1.attention.wq.weight"), 1);
  // Every parameter has exactly one owner.
  const ParamTable table = build_param_table(c);
  const auto f0 = foreign_params(uneven, table, 0), f1 = foreign_params(uneven, table, 1);
  for (size_t i = 0; i < f0.size(); ++i) EXPECT_NE(f0[i], f1[i]) << table.params()[i].name;
}

// A stage's slot holds activations for its own blocks only; the head's only on the last stage.
TEST(PipelineLayout, StageActivationsCoverOwnBlocksOnly) {
  const Config c = four_layer_config();
  const int64_t whole = Transformer(c, 2).activation_bytes();
  const int64_t first = Transformer(c, 2, {}, nullptr, nullptr, {0, 2}).activation_bytes();
  const int64_t last = Transformer(c, 2, {}, nullptr, nullptr, {2, 4}).activation_bytes();
  EXPECT_LT(first, whole);
  EXPECT_LT(last, whole);
  // The residual stream x_ counts in both halves, the rest exactly once.
  const int64_t residual = 2 * 8 * 16 * int64_t(sizeof(float));
  EXPECT_EQ(first + last, whole + residual);
  EXPECT_GT(last, first);  // the last stage also keeps the logits
}

// Gradient buckets of a stage hold its own tensors only, each float of them once, and never span
// a left-out tensor (a bucket is one contiguous range).
TEST(PipelineLayout, BucketsHoldOnlyTheStagesTensors) {
  auto group = comm::make_thread_group(1, "dp");
  Config c = four_layer_config();
  c.parallel.pp = 2;
  const StageLayout layout = make_stage_layout(c);
  const ParamTable table = build_param_table(c);
  for (int64_t stage = 0; stage < 2; ++stage) {
    const std::vector<bool> foreign = foreign_params(layout, table, stage);
    GradBuckets gb(table, c.model.n_layers, *group[0], *group[0], 2048, foreign);
    std::vector<int> covered(size_t(table.total()), 0);
    for (const GradBucket& b : gb.buckets())
      for (int64_t f = b.begin; f < b.end; ++f) ++covered[size_t(f)];
    const auto& ps = table.params();
    for (size_t i = 0; i < ps.size(); ++i)
      for (int64_t f = ps[i].offset; f < ps[i].offset + ps[i].numel; ++f)
        ASSERT_EQ(covered[size_t(f)], foreign[i] ? 0 : 1) << "stage " << stage << " " << ps[i].name;
  }
}

std::vector<double> losses_of(const std::string& run_dir) {
  std::ifstream f(run_dir + "/metrics.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

// Gradient accumulation: with dropless routing and no aux / z loss, m micro-batches give the same
// gradient as one batch (loss = sum of CE / global tokens), so the same losses; with gpipe as with
// 1f1b. The differences are summation order only. With the balancing bias on, the bias update
// sums the counts of the micro-batches, so it too matches one batch.
TEST(MicroBatches, AccumulationMatchesOneBatch) {
  auto& world = test::test_world();
  const std::string dir = test::fresh_dir("microbatches");
  Config c = test::small_train_config(test::make_corpus(dir));
  c.train.steps = 4;
  c.moe.aux_loss_coeff = 0;
  c.moe.z_loss_coeff = 0;
  TrainOptions o;
  o.quiet = true;
  for (double rate : {0.0, 0.05}) {
    c.moe.bias_update_rate = rate;
    c.parallel.microbatches = 1;
    o.run_dir = dir + "/m1_" + std::to_string(rate);
    train(c, o, world);
    const auto ref = losses_of(o.run_dir);
    ASSERT_EQ(ref.size(), 4u);
    for (const char* schedule : {"1f1b", "gpipe"}) {
      c.parallel.microbatches = 2;
      c.parallel.schedule = schedule;
      o.run_dir = dir + "/m2_" + schedule + std::to_string(rate);
      train(c, o, world);
      const auto got = losses_of(o.run_dir);
      ASSERT_EQ(got.size(), ref.size());
      for (size_t s = 0; s < ref.size(); ++s)
        EXPECT_NEAR(got[s], ref[s], 1e-5 * ref[s]) << schedule << " bias rate " << rate << " step " << s;
    }
  }
}

}  // namespace
}  // namespace moe
