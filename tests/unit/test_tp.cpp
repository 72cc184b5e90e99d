// Tensor parallelism over a thread group: the column- and row-parallel linears and the whole
// model with tp ranks match the unsplit layer / model (which test_model_grad checks against
// finite differences), forward and backward.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "src/comm/thread_communicator.h"
#include "src/model/transformer.h"
#include "src/parallel/tensor_parallel.h"
#include "src/train/model_state.h"
#include "kernels/ops.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/model_fixtures.h"
#include "tests/unit/slice_fixtures.h"

namespace moe {
namespace {

// Rows [r0, r0 + rows) and columns [c0, c0 + cols) of a row-major (R, C) matrix.
std::vector<float> block(const std::vector<float>& m, int64_t C, int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
  std::vector<float> out;
  for (int64_t i = r0; i < r0 + rows; ++i)
    for (int64_t j = c0; j < c0 + cols; ++j) out.push_back(m[size_t(i * C + j)]);
  return out;
}

constexpr int64_t N = 3, I = 8, O = 12;

class TpLinear : public ::testing::TestWithParam<int> {};

TEST_P(TpLinear, ColumnParallelMatchesUnsplit) {
  const int tp = GetParam();
  const auto x = test::random_floats(N * I, 1), w = test::random_floats(O * I, 2), dout = test::random_floats(N * O, 3);
  std::vector<float> out(N * O), dx(N * I, 0.0f), dw(O * I, 0.0f);
  ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O);
  ops::matmul_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), N, I, O);
  test::on_ranks(tp, [&](comm::Communicator& g) {
    const int64_t o = O / tp, o0 = g.rank() * o;
    const auto wl = block(w, I, o0, o, 0, I), dl = block(dout, O, 0, N, o0, o);
    std::vector<float> outl(N * o), dxl(N * I, 0.0f), dwl(o * I, 0.0f);
    column_linear_forward(outl.data(), x.data(), wl.data(), N, I, o);
    column_linear_backward(dxl.data(), dwl.data(), dl.data(), x.data(), wl.data(), N, I, o);
    tp_allreduce(&g, dxl.data(), N * I);  // f's backward
    EXPECT_LT(test::max_abs_diff(outl.data(), block(out, O, 0, N, o0, o).data(), N * o), 1e-6);
    EXPECT_LT(test::max_abs_diff(dxl.data(), dx.data(), N * I), 1e-5);
    EXPECT_LT(test::max_abs_diff(dwl.data(), block(dw, I, o0, o, 0, I).data(), o * I), 1e-6);
  });
}

TEST_P(TpLinear, RowParallelMatchesUnsplit) {
  const int tp = GetParam();
  const auto x = test::random_floats(N * I, 4), w = test::random_floats(O * I, 5), dout = test::random_floats(N * O, 6);
  const auto residual = test::random_floats(N * O, 7);
  std::vector<float> out = residual, dx(N * I, 0.0f), dw(O * I, 0.0f);
  ops::matmul_forward(out.data(), x.data(), w.data(), N, I, O, /*accumulate=*/true);
  ops::matmul_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), N, I, O);
  test::on_ranks(tp, [&](comm::Communicator& g) {
    const int64_t i = I / tp, i0 = g.rank() * i;
    const auto wl = block(w, I, 0, O, i0, i), xl = block(x, I, 0, N, i0, i);
    std::vector<float> outl = residual, partial, dxl(N * i, 0.0f), dwl(O * i, 0.0f);
    row_linear_forward(outl.data(), partial, xl.data(), wl.data(), N, i, O, &g);  // g's all-reduce
    row_linear_backward(dxl.data(), dwl.data(), dout.data(), xl.data(), wl.data(), N, i, O);
    // The residual is added once, not tp times.
    EXPECT_LT(test::max_abs_diff(outl.data(), out.data(), N * O), 1e-5);
    EXPECT_LT(test::max_abs_diff(dxl.data(), block(dx, I, 0, N, i0, i).data(), N * i), 1e-6);
    EXPECT_LT(test::max_abs_diff(dwl.data(), block(dw, I, 0, O, i0, i).data(), O * i), 1e-6);
  });
}

INSTANTIATE_TEST_SUITE_P(Tp, TpLinear, ::testing::Values(1, 2, 4));

// Normal-init weights at a scale whose gradients stand well above float noise (layout invariant).
void init_scaled(ModelState& m) {
  init_params(m.table, m.params.data(), 77);
  for (const auto& p : m.table.params())
    if (p.init == InitKind::normal) ops::scale_inplace(m.params.data() + p.offset, 20.0f, p.numel);
}

struct RankResult {
  StepLosses losses;
  ParamTable table;
  std::vector<float> grads;
};

RankResult run_model(const Config& c, comm::Communicator* tp, const std::vector<int32_t>& tokens, int64_t batch) {
  const TensorShard ts{tp ? tp->size() : 1, tp ? tp->rank() : 0};
  ModelState m(c);
  m.table = build_param_table(c, {}, ts);
  m.params.assign(size_t(m.table.total()), 0.0f);
  m.grads.assign(size_t(m.table.total()), 0.0f);
  m.p = bind_params(c, m.table, m.params.data());
  m.g = bind_params(c, m.table, m.grads.data());
  init_scaled(m);
  Transformer net(c, batch, {}, tp);
  RankResult r{net.forward(tokens.data(), m.p, {}), m.table, {}};
  net.backward(m.p, m.g, double(net.dims().N));
  r.grads.assign(m.grads.begin(), m.grads.end());
  return r;
}

class TpModel : public ::testing::TestWithParam<int> {};

// Layer 0 dense, layer 1 MoE with a shared expert; grouped-query attention.
TEST_P(TpModel, LossAndGradientsMatchUnsplit) {
  const int tp = GetParam();
  Config c = test::tiny_model_config(/*top_k=*/2);
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.d_model = 16;
  c.model.ffn_hidden = 12;
  const int64_t batch = 2;
  const auto tokens = test::random_ints(batch * (c.model.seq_len + 1), 11, 0, int32_t(c.model.vocab_size));
  const RankResult ref = run_model(c, nullptr, tokens, batch);
  std::vector<RankResult> ranks(static_cast<size_t>(tp));
  test::on_ranks(tp, [&](comm::Communicator& g) { ranks[size_t(g.rank())] = run_model(c, &g, tokens, batch); });
  int64_t split = 0;
  for (const RankResult& r : ranks) {
    EXPECT_NEAR(r.losses.lm_sum, ref.losses.lm_sum, 1e-5 * std::abs(ref.losses.lm_sum));
    EXPECT_NEAR(r.losses.aux, ref.losses.aux, 1e-6);
    for (const auto& p : r.table.params()) {
      const test::SliceError e = test::slice_grad_error(p, r.grads.data() + p.offset, ref.table, ref.grads);
      EXPECT_LE(e.err, 1e-4 * e.scale + 1e-7) << p.name;
      if (p.shard.group == "tp") ++split;
    }
  }
  // q/k/v/o in both layers and w1/w2/w3 in the dense one are split when tp > 1.
  EXPECT_EQ(split, tp > 1 ? tp * 11 : 0);
}

INSTANTIATE_TEST_SUITE_P(Tp, TpModel, ::testing::Values(1, 2));

}  // namespace
}  // namespace moe
