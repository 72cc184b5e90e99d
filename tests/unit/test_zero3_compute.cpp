// The compute copy of the weights made per range (ZeRO stage 3 under bf16 / fp16): rounding any
// partition of the buffer gives the whole-buffer refresh bit for bit, and on a 2-rank in-process
// group the stage hooks hold, at every announced use, exactly the stage's rounded weights and
// release them (zeros) once Zero3Params releases the stage.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "kernels/cpu/half.h"
#include "src/comm/thread_communicator.h"
#include "src/parallel/grad_buckets.h"
#include "src/parallel/zero.h"
#include "src/parallel/zero3.h"
#include "src/train/precision_weights.h"
#include "src/train/zero3_compute.h"
#include "tests/unit/model_fixtures.h"

namespace moe {
namespace {

std::vector<float> whole_copy(const Config& c, const ModelState& m) {
  ComputeWeights w(c, m.table);
  const float* base = w.refresh(m).tok_embeddings - m.table.params()[0].offset;
  return std::vector<float>(base, base + m.table.total());
}

TEST(Zero3Compute, RangesReproduceTheWholeRefresh) {
  for (const char* prec : {"bf16", "fp16"}) {
    Config c = test::tiny_model_config(2);
    c.train.precision = prec;
    ModelState m(c);
    test::randomize(m, 5);
    const std::vector<float> want = whole_copy(c, m);
    ComputeWeights w(c, m.table);
    w.set_per_range();
    const float* base = w.refresh(m).tok_embeddings - m.table.params()[0].offset;  // views only now
    const int64_t n = m.table.total();
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(base[i], 0.0f) << "refresh() rounded in per-range mode";
    // Ranges of 37 floats cross every tensor boundary somewhere.
    for (int64_t b = 0; b < n; b += 37) w.refresh_range(m, b, std::min(n, b + 37));
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(half::bits_of(base[i]), half::bits_of(want[size_t(i)])) << prec << " " << i;
    w.release_range(n / 3, n / 2);
    for (int64_t i = 0; i < n; ++i) {
      const float expect = i >= n / 3 && i < n / 2 ? 0.0f : want[size_t(i)];
      ASSERT_EQ(half::bits_of(base[i]), half::bits_of(expect)) << prec << " " << i;
    }
  }
}

void on_ranks(int n, const std::function<void(comm::Communicator&)>& body) {
  auto group = comm::make_thread_group(n, "dp");
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(*group[size_t(r)]); });
  for (auto& t : threads) t.join();
}

TEST(Zero3Compute, HooksRoundEachGatheredStageAndReleaseIt) {
  on_ranks(2, [](comm::Communicator& dp) {
    Config c = test::tiny_model_config(2);
    c.train.precision = "bf16";
    const int64_t L = c.model.n_layers;
    ModelState m(c);
    test::randomize(m, 9);
    const std::vector<float> want = whole_copy(c, m);
    GradBuckets gb(m.table, L, dp, dp, 64 * 4, {}, /*stage_aligned=*/true);
    ZeroPartition part(gb.buckets(), dp, dp);
    Zero3Params z3(part, L, m.params.data(), m.table.total());
    z3.release_all();
    ComputeWeights w(c, m.table);
    Zero3ComputeHooks hooks(z3, part, L, w, m);
    const float* copy = w.refresh(m).tok_embeddings - m.table.params()[0].offset;
    auto check = [&](int64_t stage, bool held, const char* when) {
      for (const GradBucket& b : gb.buckets()) {
        if (b.ready_stage != stage) continue;
        for (int64_t i = b.begin; i < b.end; ++i)
          ASSERT_EQ(half::bits_of(copy[i]), half::bits_of(held ? want[size_t(i)] : 0.0f))
              << when << " stage " << stage << " float " << i;
      }
    };
    for (int step = 0; step < 2; ++step) {
      hooks.begin_step();
      for (int64_t s = -1; s <= L; ++s) {  // forward
        hooks.before_use(s, false);
        check(s, true, "forward use");
        hooks.after_use(s, false);
        check(s, s == L, "after forward");  // the head stays for its backward
      }
      for (int64_t s = L; s >= 0; --s) {  // backward (the embeddings' needs no parameters)
        hooks.before_use(s, true);
        check(s, true, "backward use");
        hooks.after_use(s, true);
        check(s, false, "after backward");
      }
      for (int64_t s = -1; s <= L; ++s) check(s, false, "step end");
    }
    EXPECT_GT(w.peak_resident_bytes(), 0);
  });
}

}  // namespace
}  // namespace moe
