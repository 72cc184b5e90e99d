// The device step over several ranks against one rank: expert parallelism (token rows by
// all-to-all-v) and the data/expert-parallel gradient reduction and norm of train.device cuda
// (src/cuda/device_grad_sync.h). The ranks are threads on in-process groups over host memory, so
// these run under the CPU emulation (tests/gpu/emu/run.sh --step) only: on one GPU NCCL cannot
// form a group of two ranks. The device groups are the NCCL communicator on the emulation's NCCL
// stand-in, as the trainer makes them; the host groups are in-process ones.
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "src/comm/cuda/nccl_communicator.h"
#include "src/comm/thread_communicator.h"
#include "src/cuda/device_optimizer.h"
#include "src/cuda/device_model.h"
#include "src/train/optimizer.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/train_step_fixtures.h"

namespace moe::gpu_test {
namespace {

#ifdef MOE_GPU_EMULATION
#define MOE_REQUIRE_HOST_GROUPS()
#else
#define MOE_REQUIRE_HOST_GROUPS() \
  GTEST_SKIP() << "several ranks on one GPU: runs under the CPU emulation (tests/gpu/emu/run.sh --step)"
#endif

// Runs body(rank) on P threads and waits for them.
void on_ranks(int64_t P, const std::function<void(int64_t)>& body) {
  std::vector<std::thread> ranks;
  for (int64_t r = 0; r < P; ++r) ranks.emplace_back(body, r);
  for (auto& t : ranks) t.join();
}

// A rank's weights in its table from the single-rank ones: expert tensors are its slice of
// experts (ExpertShard: rank r of the ep group holds [r El, (r + 1) El)), the rest whole.
std::vector<float> rank_params(const ParamTable& local, const ParamTable& full, const std::vector<float>& params,
                               int64_t ep_rank) {
  std::vector<float> out(size_t(local.total()));
  for (const ParamInfo& q : local.params()) {
    const ParamInfo& f = full.params()[size_t(full.index_of(q.name))];
    const int64_t first = f.offset + (q.shard.split() ? ep_rank * q.numel : 0);
    std::copy(params.begin() + first, params.begin() + first + q.numel, out.begin() + q.offset);
  }
  return out;
}

// Worst difference of rank r's tensors to their single-rank counterparts, relative to each
// tensor's largest |value|; `combine`: the value compared for a replicated element (its own, or
// a sum over ranks).
double worst_vs_one_rank(const ParamTable& local, const ParamTable& full, const std::vector<float>& one, int64_t ep_rank,
                         const std::function<float(int64_t)>& replicated, const std::vector<float>& mine,
                         std::string* where) {
  double worst = 0;
  for (const ParamInfo& q : local.params()) {
    const ParamInfo& f = full.params()[size_t(full.index_of(q.name))];
    const int64_t first = f.offset + (q.shard.split() ? ep_rank * q.numel : 0);
    double mx = 0, diff = 0;
    for (int64_t k = 0; k < q.numel; ++k) {
      const float ref = one[size_t(first + k)];
      const float got = q.shard.split() ? mine[size_t(q.offset + k)] : replicated(q.offset + k);
      mx = std::max(mx, double(std::fabs(ref)));
      diff = std::max(diff, double(std::fabs(got - ref)));
    }
    const double e = mx > 0 ? diff / mx : diff;
    if (e > worst) {
      worst = e;
      *where = q.name;
    }
  }
  return worst;
}

// The expert GEMM layouts (train.gpu_expert_padding): 0 = compact + grouped GEMM; 8 = blocked.
class GpuParallelStep : public ::testing::TestWithParam<double> {};

void expert_parallel_step_matches_one_rank(const std::string& precision, double padding) {
  Config c = small_config(precision);
  c.moe.num_experts = 6;
  c.moe.bias_update_rate = 1e-3;
  c.train.gpu_expert_padding = padding;
  const int64_t B = 4, P = 2, T = c.model.seq_len, El = c.moe.num_experts / P;
  // The same kernels on the same rows: fp32 agrees to summation order, bf16 to its rounding of
  // the (differently summed) dense gradients.
  const double tol = precision == "fp32" ? 2e-4 : 2e-2;
  const std::string what = precision + ", recompute ";
  const ParamTable table = build_param_table(c);
  const std::vector<float> params = initial_params(table, 11);
  const auto tokens = tokens_for(c, B, 5);
  const GpuStep one = gpu_step(c, B, params, tokens);

  for (const char* recompute : {"none", "block"}) {
    Config ec = c;
    ec.parallel.ep = int(P);
    ec.parallel.dp = int(P);
    ec.parallel.recompute = recompute;
    const auto group = comm::make_thread_group(int(P), "ep");
    std::vector<GpuStep> got(static_cast<size_t>(P));
    std::vector<ParamTable> tables(static_cast<size_t>(P));
    std::vector<std::vector<int64_t>> sent(static_cast<size_t>(P));
    on_ranks(P, [&](int64_t r) {
      comm::Communicator& ep = *group[size_t(r)];
      // The token rows travel over NCCL, as in training (the id over the host group).
      const auto ep_nccl = comm::make_nccl_communicator(ep, "ep-nccl", stream());
      gpu::DeviceModel dm(ec, B / P, stream(), ep_nccl.get());
      dm.upload_params(rank_params(dm.table(), table, params, r).data());
      dm.zero_grads();
      GpuStep& out = got[size_t(r)];
      const SumReducer sum = [&](std::vector<double>& v) { ep.allreduce_sum(v.data(), int64_t(v.size())); };
      out.losses = dm.forward(tokens.data() + r * (B / P) * (T + 1), sum);
      dm.backward(double(B * T));
      out.grads.resize(size_t(dm.table().total()));
      dm.download_grads(out.grads.data());
      out.stats = dm.load_stats();
      out.row_use = dm.expert_row_use();
      sent[size_t(r)] = dm.ep_sent_bytes();
      tables[size_t(r)] = dm.table();
    });
    // Every routed row leaves its rank and comes back in the forward and again in the backward
    // (and once more each way in a recomputed forward): rows of D elements of T, self-sends included.
    int64_t total = 0;
    for (const auto& s : sent) {
      EXPECT_EQ(int64_t(s.size()), P) << what << recompute;
      for (int64_t b : s) total += b;
    }
    const int64_t elem = precision == "fp32" ? 4 : 2, passes = std::string(recompute) == "block" ? 6 : 4;
    EXPECT_EQ(total, passes * B * T * c.moe.top_k * c.model.d_model * elem) << what << recompute;

    EXPECT_NEAR(got[0].losses.lm_sum + got[1].losses.lm_sum, one.losses.lm_sum, 1e-5 * std::fabs(one.losses.lm_sum))
        << what << recompute;
    for (int64_t r = 0; r < P; ++r) {
      const GpuStep& g = got[size_t(r)];
      EXPECT_NEAR(g.losses.aux, one.losses.aux, 1e-6 * std::fabs(one.losses.aux)) << what << recompute;
      EXPECT_NEAR(g.losses.z, one.losses.z, 1e-5 * std::fabs(one.losses.z)) << what << recompute;
      EXPECT_EQ(g.stats[0].tokens_per_expert, one.stats[0].tokens_per_expert) << what << recompute;
      EXPECT_EQ(g.stats[0].bias, one.stats[0].bias) << what << recompute;
      std::string where;
      const auto summed = [&](int64_t k) { return got[0].grads[size_t(k)] + got[1].grads[size_t(k)]; };
      EXPECT_LT(worst_vs_one_rank(tables[size_t(r)], table, one.grads, r, summed, g.grads, &where), tol)
          << what << recompute << ", rank " << r << ", worst tensor: " << where;
    }
    // Every routed row is computed once, on the rank of its expert.
    EXPECT_EQ(got[0].row_use.routed + got[1].row_use.routed, one.row_use.routed) << what << recompute;
    EXPECT_EQ(tables[0].params()[size_t(tables[0].index_of("layers.1.moe.experts.w1"))].shape[0], El);
  }
}

// Expert parallelism over two ranks (each its half of the batch and half of the experts) against
// one rank holding every expert and the whole batch: the same losses and routing counts, the dense
// gradients summed over the ranks and each rank's expert gradients its slice of the single-rank
// ones; fp32 and bf16 (rows of 2-byte elements on the wire), with and without recompute block.
TEST_P(GpuParallelStep, ExpertParallelStepMatchesOneRank) {
  MOE_REQUIRE_GPU();
  MOE_REQUIRE_HOST_GROUPS();
  for (const char* precision : {"fp32", "bf16"})
    expert_parallel_step_matches_one_rank(precision, GetParam());
}

// Whole optimizer steps as train.device cuda runs them (forward, backward, DeviceOptimizer's
// reduction, norm and clipped AdamW) on dp 2 with ep 1 (experts replicated, reduced over dp) and
// ep 2 (experts split, their norm summed over ep), ZeRO stage 0 and 1, against one rank on the
// whole batch: the losses and norms of every step, the final weights, and the moments in the
// checkpoint format (DeviceOptimizer::save, ZeRO's gathered through its host twin).
TEST_P(GpuParallelStep, DataExpertAndZeroParallelAdamWStepsMatchOneRank) {
  MOE_REQUIRE_GPU();
  MOE_REQUIRE_HOST_GROUPS();
  Config c = small_config("fp32");
  c.moe.num_experts = 6;
  c.optim.weight_decay = 0.1;
  c.train.gpu_expert_padding = GetParam();
  const int64_t B = 4, P = 2, T = c.model.seq_len, steps = 2;
  const double clip = 0.5, lr = 1e-2;
  const ParamTable table = build_param_table(c);
  const std::vector<float> params = initial_params(table, 3);

  std::vector<double> one_norm, one_loss;
  std::vector<float> one_params(params.size()), one_m(params.size()), one_v(params.size());
  {
    gpu::DeviceModel dm(c, B, stream());
    gpu::DeviceAdamW opt(dm.table(), c.optim, stream());
    dm.upload_params(params.data());
    for (int64_t step = 0; step < steps; ++step) {
      const auto tokens = tokens_for(c, B, 100 + uint64_t(step));
      dm.zero_grads();
      one_loss.push_back(dm.forward(tokens.data()).lm_sum);
      dm.backward(double(B * T));
      one_norm.push_back(std::sqrt(opt.grad_sq_sum(dm.grads())));
      opt.step(dm.params(), dm.grads(), lr, clip_scale(one_norm.back(), clip));
      dm.refresh_compute_copy();
    }
    dm.download_params(one_params.data());
    MOE_CUDA_CHECK(cudaMemcpy(one_m.data(), opt.m(), sizeof(float) * one_m.size(), cudaMemcpyDeviceToHost));
    MOE_CUDA_CHECK(cudaMemcpy(one_v.data(), opt.v(), sizeof(float) * one_v.size(), cudaMemcpyDeviceToHost));
  }

  for (int zero : {0, 1})
    for (int ep_size : {1, 2}) {
      const std::string what = "zero " + std::to_string(zero) + ", ep " + std::to_string(ep_size);
      Config ec = c;
      ec.parallel.dp = int(P);
      ec.parallel.ep = ep_size;
      ec.parallel.zero_stage = zero;
      ASSERT_EQ(gpu::device_step_unsupported(ec), "");
      const auto dp = comm::make_thread_group(int(P), "dp");
      // ep 2: both ranks, experts split (edp: each rank alone); ep 1: each rank alone (edp = dp).
      const auto ep_pair = comm::make_thread_group(int(P), "ep");
      std::vector<std::vector<std::shared_ptr<comm::Communicator>>> alone;
      for (int64_t r = 0; r < P; ++r) alone.push_back(comm::make_thread_group(1, "alone"));
      std::vector<std::vector<double>> norms(static_cast<size_t>(P)), losses(static_cast<size_t>(P));
      std::vector<std::vector<float>> final_params(static_cast<size_t>(P)), saved_m(static_cast<size_t>(P)),
          saved_v(static_cast<size_t>(P));
      std::vector<ParamTable> tables(static_cast<size_t>(P));
      std::vector<int64_t> state_floats(static_cast<size_t>(P));
      on_ranks(P, [&](int64_t r) {
        comm::Communicator& ep = ep_size > 1 ? *ep_pair[size_t(r)] : *alone[size_t(r)][0];
        comm::Communicator& dpr = *dp[size_t(r)];
        comm::Communicator& edp = ep_size > 1 ? *alone[size_t(r)][0] : dpr;
        // Device groups over NCCL as the trainer makes them (null where a group is this rank alone).
        const auto dp_nccl = comm::make_nccl_communicator(dpr, "dp-nccl", stream());
        const auto ep_nccl = ep_size > 1 ? comm::make_nccl_communicator(ep, "ep-nccl", stream()) : nullptr;
        gpu::DeviceModel dm(ec, B / P, stream(), ep_nccl.get());
        const ParamTable& t = dm.table();
        gpu::DeviceOptimizer opt(ec, t, {}, {dp_nccl.get(), ep_size > 1 ? nullptr : dp_nccl.get(), &dpr, &edp, &ep},
                                 stream());
        dm.upload_params(rank_params(t, table, params, ep.rank()).data());
        AdamW fresh(t, ec.optim);
        opt.load(fresh);
        const SumReducer sum = [&](std::vector<double>& v) { dpr.allreduce_sum(v.data(), int64_t(v.size())); };
        for (int64_t step = 0; step < steps; ++step) {
          const auto tokens = tokens_for(c, B, 100 + uint64_t(step));
          dm.zero_grads();
          double lm = dm.forward(tokens.data() + r * (B / P) * (T + 1), sum).lm_sum;
          dm.backward(double(B * T));
          opt.reduce(dm.grads());
          const double norm = opt.norm(dm.grads());
          opt.step(dm, lr, clip_scale(norm, clip));
          dpr.allreduce_sum(&lm, 1);
          losses[size_t(r)].push_back(lm);
          norms[size_t(r)].push_back(norm);
        }
        final_params[size_t(r)].resize(size_t(t.total()));
        dm.download_params(final_params[size_t(r)].data());
        AdamW saved(t, ec.optim);
        opt.save(saved);
        EXPECT_EQ(saved.steps_done(), steps) << what;
        saved_m[size_t(r)].assign(size_t(t.total()), 0.0f);
        saved_v[size_t(r)].assign(size_t(t.total()), 0.0f);
        for (size_t i = 0; i < t.params().size(); ++i) {
          if (!saved.updates(i)) continue;
          const ParamInfo& q = t.params()[i];
          std::copy_n(saved.m_of(i), q.numel, saved_m[size_t(r)].begin() + q.offset);
          std::copy_n(saved.v_of(i), q.numel, saved_v[size_t(r)].begin() + q.offset);
        }
        state_floats[size_t(r)] = opt.state_floats();
        tables[size_t(r)] = t;
      });

      for (int64_t r = 0; r < P; ++r) {
        for (int64_t step = 0; step < steps; ++step) {
          EXPECT_NEAR(losses[size_t(r)][size_t(step)], one_loss[size_t(step)],
                      2e-5 * std::fabs(one_loss[size_t(step)]))
              << what << ", rank " << r << ", step " << step;
          EXPECT_NEAR(norms[size_t(r)][size_t(step)], one_norm[size_t(step)], 1e-4 * one_norm[size_t(step)])
              << what << ", rank " << r << ", step " << step;
        }
        // As in GpuTrainStep.Fp32AdamWStepsTrackCpu: AdamW divides each gradient element by its
        // own running RMS, so rounding-level gradient differences move a weight by up to a
        // sizeable fraction of lr; the losses above are the tight check.
        const int64_t ep_rank = ep_size > 1 ? r : 0;
        std::string where;
        const auto& mine = final_params[size_t(r)];
        const auto own = [&](int64_t k) { return mine[size_t(k)]; };
        EXPECT_LT(worst_vs_one_rank(tables[size_t(r)], table, one_params, ep_rank, own, mine, &where), 2e-3)
            << what << ", rank " << r << ", weights, worst tensor: " << where;
        const auto& m = saved_m[size_t(r)];
        const auto m_own = [&](int64_t k) { return m[size_t(k)]; };
        EXPECT_LT(worst_vs_one_rank(tables[size_t(r)], table, one_m, ep_rank, m_own, m, &where), 1e-3)
            << what << ", rank " << r << ", first moment, worst tensor: " << where;
        const auto& v = saved_v[size_t(r)];
        const auto v_own = [&](int64_t k) { return v[size_t(k)]; };
        EXPECT_LT(worst_vs_one_rank(tables[size_t(r)], table, one_v, ep_rank, v_own, v, &where), 1e-3)
            << what << ", rank " << r << ", second moment, worst tensor: " << where;
        // ZeRO 1 keeps about half the moments on each of the two ranks.
        if (zero == 1) EXPECT_LT(state_floats[size_t(r)], tables[size_t(r)].total() * 3 / 4) << what;
        else EXPECT_EQ(state_floats[size_t(r)], tables[size_t(r)].total()) << what;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(ExpertLayouts, GpuParallelStep, ::testing::Values(0.0, 8.0));

}  // namespace
}  // namespace moe::gpu_test
