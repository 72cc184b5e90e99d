// Expert tensor parallelism over a thread group, as the etp = tp group (same tokens) and as an etp
// group of dp ranks (tp 1, different tokens): every rank holds a hidden-unit slice of each
// expert, and the model matches the unsplit one (which test_model_grad checks against finite
// differences): loss, and every gradient slice, experts included. Also: the slices of an etp
// table hold exactly the elements of the unsplit init.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "kernels/ops.h"
#include "moe/etp_gather.h"
#include "src/comm/thread_communicator.h"
#include "src/model/transformer.h"
#include "src/train/model_state.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/model_fixtures.h"
#include "tests/unit/slice_fixtures.h"

namespace moe {
namespace {

// Element i of a slice in the unsplit tensor, computed here rather than with params.cpp's
// global_index, which the initialisation under test uses itself.
int64_t reference_index(const ParamInfo& p, int64_t i) {
  const std::vector<int64_t> start = shard_start(p);
  int64_t g = 0, stride = 1;
  for (size_t d = p.shape.size(); d-- > 0;) {
    g += (i % p.shape[d] + start[d]) * stride;
    i /= p.shape[d];
    stride *= p.shard.global_shape[d];
  }
  return g;
}

struct RankResult {
  StepLosses losses;
  ParamTable table;
  std::vector<float> params, grads;
};

// tp = etp = g's size (null: the unsplit model).
RankResult run_model(const Config& c, comm::Communicator* g, const std::vector<int32_t>& tokens, int64_t batch) {
  const int64_t n = g ? g->size() : 1, r = g ? g->rank() : 0;
  ModelState m(c, ExpertShard{1, 0, n, r}, TensorShard{n, r});
  init_params(m.table, m.params.data(), 77);
  for (const auto& p : m.table.params())  // gradients well above float noise
    if (p.init == InitKind::normal) ops::scale_inplace(m.params.data() + p.offset, 20.0f, p.numel);
  Transformer net(c, batch, {}, g, g);
  RankResult out{net.forward(tokens.data(), m.p, {}), m.table, {m.params.begin(), m.params.end()}, {}};
  net.backward(m.p, m.g, double(net.dims().N));
  out.grads.assign(m.grads.begin(), m.grads.end());
  return out;
}

Config etp_config(int n) {
  Config c = test::tiny_model_config(/*top_k=*/2);  // layer 0 dense, layer 1 MoE with a shared expert
  c.model.n_heads = 4;
  c.model.n_kv_heads = n == 4 ? 4 : 2;  // grouped-query attention where the kv heads divide
  c.model.d_model = 16;
  c.model.ffn_hidden = 12;
  c.moe.expert_hidden = 8;
  return c;
}

class Etp : public ::testing::TestWithParam<int> {};

TEST_P(Etp, SlicesHoldTheUnsplitInit) {
  const int n = GetParam();
  const Config c = etp_config(n);
  ModelState full(c);
  init_params(full.table, full.params.data(), 5);
  for (int r = 0; r < n; ++r) {
    ModelState part(c, ExpertShard{1, 0, n, r}, TensorShard{n, r});
    init_params(part.table, part.params.data(), 5);
    for (const auto& p : part.table.params()) {
      const ParamInfo& q = full.table.params()[size_t(full.table.index_of(p.name))];
      if (p.shard.expert) {
        EXPECT_EQ(p.shard.etp_dim >= 0, n > 1) << p.name;
      }
      for (int64_t i = 0; i < p.numel; ++i)
        ASSERT_EQ(part.params[size_t(p.offset + i)], full.params[size_t(q.offset + reference_index(p, i))]) << p.name;
    }
  }
}

TEST_P(Etp, LossAndGradientsMatchUnsplit) {
  const int n = GetParam();
  const Config c = etp_config(n);
  const int64_t batch = 2;
  const auto tokens = test::random_ints(batch * (c.model.seq_len + 1), 11, 0, int32_t(c.model.vocab_size));
  const RankResult ref = run_model(c, nullptr, tokens, batch);
  std::vector<RankResult> ranks(static_cast<size_t>(n));
  test::on_ranks(n, [&](comm::Communicator& g) { ranks[size_t(g.rank())] = run_model(c, &g, tokens, batch); });
  int64_t expert_slices = 0;
  for (const RankResult& r : ranks) {
    EXPECT_NEAR(r.losses.lm_sum, ref.losses.lm_sum, 1e-5 * std::abs(ref.losses.lm_sum));
    EXPECT_NEAR(r.losses.aux, ref.losses.aux, 1e-6);
    EXPECT_NEAR(r.losses.z, ref.losses.z, 1e-6);
    for (const auto& p : r.table.params()) {
      const test::SliceError e = test::slice_grad_error(p, r.grads.data() + p.offset, ref.table, ref.grads);
      EXPECT_LE(e.err, 1e-4 * e.scale + 1e-7) << p.name;
      expert_slices += p.shard.etp_dim >= 0;
    }
  }
  EXPECT_EQ(expert_slices, n > 1 ? n * 3 : 0);  // w1, w3, w2 of the MoE layer on every rank
}

// etp with tp 1: the etp group's ranks hold different sequences (as dp ranks do); the rows they
// dispatch are gathered over etp. Rank r runs sequences [r b, (r+1) b) of the unsplit batch: the
// loss sums and the dense gradients summed over ranks, and every expert slice's gradient (from all
// ranks' tokens), match the unsplit model on the whole batch.
TEST_P(Etp, GatheredOverDpRanksMatchesUnsplit) {
  const int n = GetParam();
  const Config c = etp_config(1);
  const int64_t b = 2, row = c.model.seq_len + 1;
  const auto tokens = test::random_ints(n * b * row, 13, 0, int32_t(c.model.vocab_size));
  ModelState ref(c);
  init_params(ref.table, ref.params.data(), 77);
  Transformer ref_net(c, n * b);
  const StepLosses ref_losses = ref_net.forward(tokens.data(), ref.p, {});
  ref_net.backward(ref.p, ref.g, double(ref_net.dims().N));
  std::vector<double> lm(static_cast<size_t>(n));
  std::vector<std::vector<float>> grads(static_cast<size_t>(n));
  std::vector<ParamTable> tables(static_cast<size_t>(n));
  test::on_ranks(n, [&](comm::Communicator& g) {
    const int r = g.rank();
    ModelState m(c, ExpertShard{1, 0, n, r});
    init_params(m.table, m.params.data(), 77);
    Transformer net(c, b, {}, nullptr, &g);
    const SumReducer over_dp = [&](std::vector<double>& v) { g.allreduce_sum(v.data(), int64_t(v.size())); };
    const StepLosses l = net.forward(tokens.data() + r * b * row, m.p, over_dp);
    net.backward(m.p, m.g, double(n * net.dims().N));
    EXPECT_NEAR(l.aux, ref_losses.aux, 1e-6);
    lm[size_t(r)] = l.lm_sum;
    grads[size_t(r)].assign(m.grads.begin(), m.grads.end());
    tables[size_t(r)] = m.table;
  });
  double lm_sum = 0;
  for (double x : lm) lm_sum += x;
  EXPECT_NEAR(lm_sum, ref_losses.lm_sum, 1e-5 * std::abs(ref_losses.lm_sum));
  for (const auto& q : ref.table.params()) {
    double scale = 0;
    for (int64_t i = 0; i < q.numel; ++i) scale = std::max(scale, double(std::abs(ref.grads[size_t(q.offset + i)])));
    std::vector<double> dense(size_t(q.numel), 0.0);  // replicated tensors: summed over the ranks, as dp does
    for (int r = 0; r < n; ++r) {
      const ParamInfo& p = tables[size_t(r)].params()[size_t(tables[size_t(r)].index_of(q.name))];
      const float* g = grads[size_t(r)].data() + p.offset;
      if (!p.shard.split()) {
        for (int64_t i = 0; i < p.numel; ++i) dense[size_t(i)] += g[i];
        continue;
      }
      EXPECT_LE(test::slice_grad_error(p, g, ref.table, {ref.grads.begin(), ref.grads.end()}).err, 1e-4 * scale + 1e-7) << q.name << " slice " << r;
    }
    if (n > 1 && q.shard.expert) continue;
    double err = 0;
    for (int64_t i = 0; i < q.numel; ++i) err = std::max(err, std::abs(dense[size_t(i)] - ref.grads[size_t(q.offset + i)]));
    EXPECT_LE(err, 1e-4 * scale + 1e-7) << q.name;
  }
}

// EtpGather alone, with uneven rows per member and expert (some zero, one member with none):
// gather lays every member's rows out expert-major, members in rank order; scatter_sum returns
// each member the sum over members of the values at its rows.
TEST_P(Etp, GatherLaysOutRowsExpertMajorAndScatterSums) {
  const int n = GetParam();
  const int64_t E = 3, D = 2;
  auto rows_of = [](int r, int64_t e) { return r == 1 ? int64_t(0) : (r + 2 * e) % 3; };
  auto value = [](int r, int64_t e, int64_t j, int64_t k) { return float(1000 * r + 100 * e + 10 * j + k); };
  test::on_ranks(n, [&](comm::Communicator& g) {
    const int r = g.rank();
    std::vector<int64_t> offsets{0};
    std::vector<float> mine;
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t j = 0; j < rows_of(r, e); ++j)
        for (int64_t k = 0; k < D; ++k) mine.push_back(value(r, e, j, k));
      offsets.push_back(offsets.back() + rows_of(r, e));
    }
    EtpGather eg;
    eg.plan(g, offsets);
    std::vector<float> all, expected;
    eg.gather(g, mine.data(), D, all);
    std::vector<int64_t> want_offsets{0};
    for (int64_t e = 0; e < E; ++e) {
      for (int q = 0; q < n; ++q)
        for (int64_t j = 0; j < rows_of(q, e); ++j)
          for (int64_t k = 0; k < D; ++k) expected.push_back(value(q, e, j, k));
      want_offsets.push_back(int64_t(expected.size()) / D);
    }
    EXPECT_EQ(all, expected);
    EXPECT_EQ(eg.all_offsets(), want_offsets);
    // Every member holds all rows; summed back, my rows come to n times my values.
    std::vector<float> back;
    eg.scatter_sum(g, all.data(), D, back);
    ASSERT_EQ(back.size(), mine.size());
    for (size_t i = 0; i < mine.size(); ++i) EXPECT_EQ(back[i], float(n) * mine[i]);
  });
}

INSTANTIATE_TEST_SUITE_P(Etp, Etp, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace moe
