// The GPU decoder against the CPU decoder (src/train/generate.h) on one model: the logits of every
// position while a sequence is fed, and greedy generation giving the same tokens.
#include <cmath>
#include <vector>

#include "src/cuda/device_decoder.h"
#include "src/model/params.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

Config decoder_config() {
  Config c;
  c.model.vocab_size = 53;
  c.model.d_model = 32;
  c.model.n_layers = 3;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.seq_len = 16;
  c.model.ffn_hidden = 40;
  c.model.moe_every = 2;  // layers 1 (MoE) and 0, 2 (dense)
  c.moe.num_experts = 6;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 24;
  return c;
}

TEST(GpuDecoder, LogitsMatchCpuDecoderAtEveryPosition) {
  MOE_REQUIRE_GPU();
  const Config c = decoder_config();
  const ParamTable table = build_param_table(c);
  std::vector<float> params(size_t(table.total()));
  init_params(table, params.data(), 21);
  // Larger weights than the init so the routing and the attention are far from uniform.
  for (float& w : params) w *= 4.0f;
  const ModelParams p = bind_params(c, table, params.data());
  const int64_t n = 30;  // longer than seq_len: the cache is the only limit
  Decoder cpu(c, p, n);
  gpu::DeviceDecoder dev(c, params.data(), n, stream());
  const auto tokens = random_ints(n, 9, 0, int32_t(c.model.vocab_size));
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<float> want = cpu.feed(tokens[size_t(t)]);
    const std::vector<float> got = dev.feed(tokens[size_t(t)]);
    ASSERT_LT(rel_err(got, want), 1e-4) << "position " << t;
  }
  EXPECT_EQ(dev.position(), n);
}

TEST(GpuDecoder, GreedyGenerationMatchesCpu) {
  MOE_REQUIRE_GPU();
  const Config c = decoder_config();
  const ParamTable table = build_param_table(c);
  std::vector<float> params(size_t(table.total()));
  init_params(table, params.data(), 5);
  for (float& w : params) w *= 4.0f;
  const ModelParams p = bind_params(c, table, params.data());
  const std::vector<int32_t> prompt{3, 14, 15, 9, 2};
  SamplingOptions greedy;
  greedy.temperature = 0;
  const int64_t max_new = 20;
  Decoder cpu(c, p, int64_t(prompt.size()) + max_new);
  gpu::DeviceDecoder dev(c, params.data(), int64_t(prompt.size()) + max_new, stream());
  EXPECT_EQ(generate(dev, prompt, max_new, greedy, -1), generate(cpu, prompt, max_new, greedy, -1));
}

TEST(GpuDecoder, RefusesRoutersItCannotRun) {
  Config c = decoder_config();
  EXPECT_EQ(gpu::device_decode_unsupported(c), "");
  c.moe.router = "sigmoid";
  EXPECT_NE(gpu::device_decode_unsupported(c).find("softmax"), std::string::npos);
  c = decoder_config();
  c.moe.num_shared_experts = 1;
  EXPECT_NE(gpu::device_decode_unsupported(c).find("shared"), std::string::npos);
}

}  // namespace
}  // namespace moe::gpu_test
