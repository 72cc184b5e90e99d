// ZeRO 1 / 2 with sharded fp32 master weights under bf16 / fp16 (src/train/sharded_master.h): on
// in-process groups of 1 to 4 ranks, each rank keeps only its owned master floats, and rounding
// them plus the 16-bit all-gather of the copy (src/parallel/zero_half_gather.h) gives the
// whole-buffer refresh of the unsharded master bit for bit, special values included; sharded AdamW
// steps followed by the copy gather give the same copy as full AdamW and a whole refresh; the
// gather moves about half the bytes of an fp32 one; the balancing bias is refilled whole.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "kernels/cpu/half.h"
#include "src/core/page_memory.h"
#include "src/comm/thread_communicator.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/zero.h"
#include "src/parallel/zero_optimizer.h"
#include "src/train/optimizer.h"
#include "src/train/precision_weights.h"
#include "src/train/sharded_master.h"
#include "tests/unit/model_fixtures.h"
#include "tests/unit/slice_fixtures.h"

namespace moe {
namespace {

void on_ranks(int n, const std::function<void(comm::Communicator&)>& body) { test::on_ranks(n, body, "dp"); }

std::vector<float> whole_copy(const Config& c, const ModelState& m) {
  ComputeWeights w(c, m.table);
  const float* base = w.refresh(m).tok_embeddings - m.table.params()[0].offset;
  return std::vector<float>(base, base + m.table.total());
}

// Random weights plus values that stress the conversions: infinities, NaN, fp16 overflow,
// subnormals of both half types, ties; and a non-zero balancing bias.
void fill_master(ModelState& m) {
  test::randomize(m, 21);
  float* p = m.params.data();
  const float specials[] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 70000.0f, -65520.0f, 3e-8f, 1e-40f,
                            1.0f + 1.0f / 256.0f, -0.0f};
  const ParamInfo& emb = m.table.params()[0];  // 88 floats; padding between tensors stays zero
  for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); ++k) p[emb.offset + 7 + 9 * int64_t(k)] = specials[k];
  const int bias = m.table.index_of("layers.1.moe.router.bias");
  const ParamInfo& b = m.table.params()[size_t(bias)];
  for (int64_t e = 0; e < b.numel; ++e) p[b.offset + e] = 0.125f * float(e + 1) + 1e-7f;
}

void expect_bits(const float* got, const std::vector<float>& want, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(half::bits_of(got[i]), half::bits_of(want[i])) << what << " float " << i;
}

TEST(ZeroMaster, CopyGatherReproducesTheWholeRefresh) {
  for (const char* prec : {"bf16", "fp16"}) {
    for (int n = 1; n <= 4; ++n) {
      on_ranks(n, [&](comm::Communicator& dp) {
        Config c = test::tiny_model_config(2);
        c.train.precision = prec;
        ModelState m(c);
        fill_master(m);
        const std::vector<float> master(m.params.begin(), m.params.end()), want = whole_copy(c, m);
        GradBuckets gb(m.table, c.model.n_layers, dp, dp, 53 * 4);  // buckets cut through tensors
        ZeroPartition part(gb.buckets(), dp, dp);
        ComputeWeights w(c, m.table);
        ShardedMaster sm(part, w, m);
        const std::string what = std::string(prec) + " dp " + std::to_string(n) + " rank " + std::to_string(dp.rank());
        // Only the owned floats are left in the master.
        std::vector<float> owned_only(master.size(), 0.0f);
        for (const ZeroRange& z : part.ranges())
          std::copy_n(master.begin() + z.begin, z.owned, owned_only.begin() + z.begin);
        if (n > 1) expect_bits(m.params.data(), owned_only, what + " released master");
        sm.refresh_copy();
        expect_bits(w.data(), want, what + " copy");
        expect_bits(w.refresh(m).tok_embeddings - m.table.params()[0].offset, want, what + " views");
        std::vector<float> staging;
        sm.gather_master(staging);
        expect_bits(m.params.data(), master, what + " gathered master");
        sm.release_master();
        if (n > 1) expect_bits(m.params.data(), owned_only, what + " released again");
        // Half the bytes of the fp32 gather, plus 2 more per exact float and per tail float.
        const HalfGather& g = sm.copy_gather();
        int64_t exact = 0;
        for (const ParamInfo& p : m.table.params()) exact += ComputeWeights::rounds(p.name) ? 0 : p.numel;
        if (n == 1) EXPECT_EQ(g.gathered_bytes(), 0);
        else EXPECT_LE(g.gathered_bytes(), g.fp32_bytes() / 2 + 2 * exact + 8 * n * int64_t(part.ranges().size()));
        EXPECT_EQ(g.fp32_bytes() > 0, n > 1);
      });
    }
  }
}

TEST(ZeroMaster, ShardedStepsGiveTheCopyOfFullAdamW) {
  OptimConfig cfg;
  cfg.weight_decay = 0.1;
  for (const char* prec : {"bf16", "fp16"}) {
    on_ranks(3, [&](comm::Communicator& dp) {
      Config c = test::tiny_model_config(2);
      c.train.precision = prec;
      ModelState m(c), ref(c);
      test::randomize(m, 4);
      test::randomize(ref, 4);
      GradBuckets gb(m.table, c.model.n_layers, dp, dp, 61 * 4);
      ZeroPartition part(gb.buckets(), dp, dp);
      ComputeWeights w(c, m.table);
      ShardedMaster sm(part, w, m);
      ZeroAdamW zero(m.table, cfg, {}, part);
      AdamW full(ref.table, cfg);
      std::vector<float> grads(m.params.size());
      for (int step = 0; step < 3; ++step) {
        for (size_t i = 0; i < grads.size(); ++i) grads[i] = float(std::sin(0.31 * double(i) + step));
        zero.step(m.params.data(), grads.data(), /*sharded=*/false, 1e-2, 0.7);  // stage 1 reads the full gradient
        full.step(ref.params.data(), grads.data(), 1e-2, 0.7);
        sm.refresh_copy();
        expect_bits(w.data(), whole_copy(c, ref), std::string(prec) + " step " + std::to_string(step));
      }
    });
  }
}

TEST(ZeroMaster, RefillGivesEveryRankTheWholeBias) {
  on_ranks(2, [](comm::Communicator& dp) {
    Config c = test::tiny_model_config(2);
    c.train.precision = "bf16";
    ModelState m(c);
    fill_master(m);
    const ParamInfo& b = m.table.params()[size_t(m.table.index_of("layers.1.moe.router.bias"))];
    const std::vector<float> bias(m.params.begin() + b.offset, m.params.begin() + b.offset + b.numel);
    GradBuckets gb(m.table, c.model.n_layers, dp, dp, 5 * 4);  // the bias (4 floats) split over the ranks
    ZeroPartition part(gb.buckets(), dp, dp);
    ComputeWeights w(c, m.table);
    ShardedMaster sm(part, w, m);
    sm.refresh_copy();
    int64_t missing = 0;  // bias floats a rank does not own (released: zero)
    for (int64_t e = 0; e < b.numel; ++e) missing += m.params[size_t(b.offset + e)] != bias[size_t(e)];
    dp.allreduce_sum(&missing, 1);
    ASSERT_GT(missing, 0) << "the test needs a bias that no single rank owns whole";
    sm.refill_untrained();
    for (int64_t e = 0; e < b.numel; ++e) ASSERT_EQ(m.params[size_t(b.offset + e)], bias[size_t(e)]) << "bias " << e;
    for (int64_t e = 0; e < b.numel; ++e) m.params[size_t(b.offset + e)] += 1.0f;  // every rank's update
    sm.refresh_copy();
    for (int64_t e = 0; e < b.numel; ++e) ASSERT_EQ(w.data()[b.offset + e], bias[size_t(e)] + 1.0f) << "bias " << e;
  });
}

// Start-up without a whole copy: each rank initialises only its owned ranges, with the values of
// the unsharded init (keyed by name and global index), under ep 2 and tp 2 slices too; the rest of
// the buffer stays untouched (not resident).
TEST(ZeroMaster, OwnedRangeInitMatchesTheWholeInit) {
  for (const auto& [ep, tp] : {std::pair<int64_t, int64_t>{1, 1}, {2, 1}, {1, 2}}) {
    on_ranks(3, [&](comm::Communicator& dp) {
      Config c = test::tiny_model_config(2);
      c.model.n_layers = 8;
      c.model.d_model = 64;
      c.model.n_heads = 4;
      c.model.n_kv_heads = 2;
      c.model.ffn_hidden = 128;
      c.moe.expert_hidden = 128;
      const ExpertShard es{ep, ep - 1, 1, 0};
      const TensorShard ts{tp, tp - 1};
      ModelState whole(c, es, ts), part_init(c, es, ts);
      init_params(whole.table, whole.params.data(), 99);
      GradBuckets gb(part_init.table, c.model.n_layers, dp, dp, 1000 * 4);
      ZeroPartition part(gb.buckets(), dp, dp);
      const auto owned = part.owned_ranges();
      init_params_ranges(part_init.table, part_init.params.data(), 99, owned);
      // Only about a third of the buffer's pages were touched (plus the pages at range edges;
      // measured before anything reads the rest, which would map the zero page there).
      const int64_t n = int64_t(whole.params.size()), held = resident_bytes(part_init.params.data(), n);
      EXPECT_LT(held, n * 4 / 3 + 2 * 4096 * int64_t(owned.size()) + 4096) << held << " of " << n * 4;
      std::vector<char> mine(whole.params.size(), 0);
      for (const auto& [b, e] : owned) std::fill(mine.begin() + b, mine.begin() + e, 1);
      for (size_t i = 0; i < mine.size(); ++i)
        ASSERT_EQ(half::bits_of(part_init.params[i]), half::bits_of(mine[i] ? whole.params[i] : 0.0f))
            << "ep " << ep << " tp " << tp << " float " << i;
    });
  }
}

}  // namespace
}  // namespace moe
