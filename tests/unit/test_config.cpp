// The YAML config: loading, round trip, every kind of user error, --set overrides, layout checks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/train/config.h"
#include "src/train/config_schema.h"

namespace moe {
namespace {

const char* kSource = "configs/bad.yaml";

// The message of the ConfigError that parsing `text` throws; fails the test if none is thrown.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(text, kSource, overrides);
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.exit_code(), kExitUsage);
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return "";
}

std::string layout_error_of(const Config& c, int64_t world) {
  try {
    validate_layout(c, world);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for world " << world;
  return "";
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

void expect_same(const Config& a, const Config& b) {
  EXPECT_EQ(a.model.vocab_size, b.model.vocab_size);
  EXPECT_EQ(a.model.d_model, b.model.d_model);
  EXPECT_EQ(a.model.n_layers, b.model.n_layers);
  EXPECT_EQ(a.model.n_heads, b.model.n_heads);
  EXPECT_EQ(a.model.n_kv_heads, b.model.n_kv_heads);
  EXPECT_EQ(a.model.seq_len, b.model.seq_len);
  EXPECT_EQ(a.model.ffn_hidden, b.model.ffn_hidden);
  EXPECT_EQ(a.model.norm_eps, b.model.norm_eps);
  EXPECT_EQ(a.model.rope_theta, b.model.rope_theta);
  EXPECT_EQ(a.model.moe_every, b.model.moe_every);
  EXPECT_EQ(a.model.first_dense_layers, b.model.first_dense_layers);
  EXPECT_EQ(a.moe.num_experts, b.moe.num_experts);
  EXPECT_EQ(a.moe.top_k, b.moe.top_k);
  EXPECT_EQ(a.moe.expert_hidden, b.moe.expert_hidden);
  EXPECT_EQ(a.moe.num_shared_experts, b.moe.num_shared_experts);
  EXPECT_EQ(a.moe.capacity_factor, b.moe.capacity_factor);
  EXPECT_EQ(a.moe.drop_policy, b.moe.drop_policy);
  EXPECT_EQ(a.moe.norm_topk_prob, b.moe.norm_topk_prob);
  EXPECT_EQ(a.moe.aux_loss_coeff, b.moe.aux_loss_coeff);
  EXPECT_EQ(a.moe.z_loss_coeff, b.moe.z_loss_coeff);
  EXPECT_EQ(a.moe.bias_update_rate, b.moe.bias_update_rate);
  EXPECT_EQ(a.moe.router, b.moe.router);
  EXPECT_EQ(a.parallel.dp, b.parallel.dp);
  EXPECT_EQ(a.parallel.tp, b.parallel.tp);
  EXPECT_EQ(a.parallel.pp, b.parallel.pp);
  EXPECT_EQ(a.parallel.ep, b.parallel.ep);
  EXPECT_EQ(a.parallel.etp, b.parallel.etp);
  EXPECT_EQ(a.parallel.zero_stage, b.parallel.zero_stage);
  EXPECT_EQ(a.parallel.microbatches, b.parallel.microbatches);
  EXPECT_EQ(a.parallel.pp_layout, b.parallel.pp_layout);
  EXPECT_EQ(a.parallel.virtual_stages, b.parallel.virtual_stages);
  EXPECT_EQ(a.parallel.schedule, b.parallel.schedule);
  EXPECT_EQ(a.parallel.recompute, b.parallel.recompute);
  EXPECT_EQ(a.parallel.timeout_s, b.parallel.timeout_s);
  EXPECT_EQ(a.train.steps, b.train.steps);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.precision, b.train.precision);
  EXPECT_EQ(a.train.device, b.train.device);
  EXPECT_EQ(a.train.log_every, b.train.log_every);
  EXPECT_EQ(a.train.eval_every, b.train.eval_every);
  EXPECT_EQ(a.train.eval_batches, b.train.eval_batches);
  EXPECT_EQ(a.train.loss_scale_init, b.train.loss_scale_init);
  EXPECT_EQ(a.train.loss_scale_window, b.train.loss_scale_window);
  EXPECT_EQ(a.optim.lr, b.optim.lr);
  EXPECT_EQ(a.optim.min_lr, b.optim.min_lr);
  EXPECT_EQ(a.optim.warmup_steps, b.optim.warmup_steps);
  EXPECT_EQ(a.optim.weight_decay, b.optim.weight_decay);
  EXPECT_EQ(a.optim.beta1, b.optim.beta1);
  EXPECT_EQ(a.optim.beta2, b.optim.beta2);
  EXPECT_EQ(a.optim.eps, b.optim.eps);
  EXPECT_EQ(a.optim.grad_clip, b.optim.grad_clip);
  EXPECT_EQ(a.data.path, b.data.path);
  EXPECT_EQ(a.data.prefetch, b.data.prefetch);
  EXPECT_EQ(a.checkpoint.dir, b.checkpoint.dir);
  EXPECT_EQ(a.checkpoint.every, b.checkpoint.every);
  EXPECT_EQ(a.checkpoint.keep, b.checkpoint.keep);
  EXPECT_EQ(a.checkpoint.resume, b.checkpoint.resume);
  EXPECT_EQ(a.profile.load_balance, b.profile.load_balance);
  EXPECT_EQ(a.profile.every, b.profile.every);
}

// Every field away from its default, consistent with all the cross-key checks.
Config all_non_default() {
  Config c;
  c.model = {300, 96, 4, 6, 3, 32, 192, 1e-6, 500000.0, 2, 1};
  c.moe.num_experts = 6;
  c.moe.top_k = 3;
  c.moe.expert_hidden = 48;
  c.moe.num_shared_experts = 1;
  c.moe.capacity_factor = 1.25;
  c.moe.drop_policy = "position";
  c.moe.norm_topk_prob = false;
  c.moe.aux_loss_coeff = 0.02;
  c.moe.z_loss_coeff = 1e-4;
  c.moe.bias_update_rate = 0.001;
  c.moe.router = "sigmoid";
  c.parallel = {2, 3, 2, 3, 2, 2, 4, "gpipe", "block", 60.5, {1, 3}, 1};
  c.train = {1000, 16, 18446744073709551615ull, "bf16", "cuda", 5, 50, 8, 1024.0, 50, 1.5};
  c.optim = {0.1 + 0.2, 1e-5, 100, 0.0, 0.8, 0.999, 1e-10, 0.5};
  c.data = {"my data/x: y", 2};
  c.checkpoint = {"~", 250, 5, "runs/a/checkpoints/step_00000100"};
  c.profile = {false, 10};
  return c;
}

TEST(ConfigFile, TinyLoads) {
  Config c = load_config(MOE_SOURCE_DIR "/configs/tiny.yaml", {});
  EXPECT_EQ(c.source, MOE_SOURCE_DIR "/configs/tiny.yaml");
  EXPECT_EQ(c.model.vocab_size, 260);
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.n_layers, 2);
  EXPECT_EQ(c.model.n_heads, 4);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.model.seq_len, 64);
  EXPECT_EQ(c.model.ffn_hidden, 128);
  EXPECT_EQ(c.model.moe_every, 1);
  EXPECT_EQ(c.moe.num_experts, 4);
  EXPECT_EQ(c.moe.top_k, 2);
  EXPECT_EQ(c.moe.expert_hidden, 128);
  EXPECT_EQ(c.train.steps, 300);
  EXPECT_EQ(c.train.batch_size, 16);
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-3);
  EXPECT_DOUBLE_EQ(c.optim.min_lr, 3e-4);
  EXPECT_EQ(c.optim.warmup_steps, 20);
  EXPECT_EQ(c.data.path, "datasets/fortunes");
  EXPECT_EQ(c.checkpoint.every, 100);
  validate_layout(c, 1);
}

TEST(ConfigFile, BenchCpuLoads) {
  Config c = load_config(MOE_SOURCE_DIR "/configs/bench_cpu.yaml", {});
  EXPECT_EQ(c.model.d_model, 512);
  EXPECT_EQ(c.model.n_layers, 8);
  EXPECT_EQ(c.model.n_heads, 8);
  EXPECT_EQ(c.model.n_kv_heads, 4);
  EXPECT_EQ(c.model.seq_len, 256);
  EXPECT_EQ(c.model.ffn_hidden, 1024);
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_EQ(c.moe.top_k, 2);
  EXPECT_EQ(c.moe.expert_hidden, 1024);
  EXPECT_EQ(c.model.vocab_size, 260);
  EXPECT_EQ(c.train.batch_size, 8);
  EXPECT_EQ(c.train.steps, 6);
  EXPECT_EQ(c.train.log_every, 1);
}

TEST(ConfigFile, MissingFileNamesThePath) {
  try {
    load_config("/nonexistent/dir/x.yaml", {});
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_HAS(std::string(e.what()), "/nonexistent/dir/x.yaml");
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST(ConfigFile, EmptyTextAndEmptySectionsKeepDefaults) {
  Config defaults;
  expect_same(parse_config("", "empty.yaml", {}), defaults);
  expect_same(parse_config("model:\nprofile:\n", "sections.yaml", {}), defaults);
}

TEST(ConfigRoundTrip, DumpThenParseGivesTheSameConfig) {
  Config c = all_non_default();
  std::string text = dump_config(c);
  Config back = parse_config(text, "dumped.yaml", {});
  expect_same(back, c);
  EXPECT_EQ(dump_config(back), text);
  // Every key is written, one line each, under its section.
  for (const auto& k : config_detail::config_schema()) EXPECT_HAS(text, "\n  " + k.key + ": ");
  EXPECT_HAS(text, "optim:\n  lr: ");
}

TEST(ConfigRoundTrip, DefaultsAndStringsThatLookLikeOtherTypes) {
  Config d;
  expect_same(parse_config(dump_config(d), "d.yaml", {}), d);
  for (std::string s : {"", "123", "true", "null", "#x", " lead", "a'b\"c"}) {
    Config c;
    c.checkpoint.dir = s;
    c.data.path = s.empty() ? "p" : s;
    Config back = parse_config(dump_config(c), "s.yaml", {});
    EXPECT_EQ(back.checkpoint.dir, c.checkpoint.dir);
    EXPECT_EQ(back.data.path, c.data.path);
  }
}

TEST(ConfigRoundTrip, RealsAreWrittenForYaml11Readers) {
  EXPECT_EQ(config_detail::format_real(300.0), "300.0");
  EXPECT_EQ(config_detail::format_real(1e-5), "1.0e-05");
  EXPECT_EQ(config_detail::format_real(0.003), "0.003");
}

TEST(ConfigUnknown, KeyWithSuggestion) {
  std::string m = error_of("model:\n  d_modle: 64\n");
  EXPECT_HAS(m, "model.d_modle: unknown key in configs/bad.yaml; did you mean model.d_model?");
}

TEST(ConfigUnknown, KeyOfAnotherSection) {
  EXPECT_HAS(error_of("model:\n  top_k: 2\n"), "did you mean moe.top_k?");
  EXPECT_HAS(error_of("train:\n  lr: 0.1\n"), "did you mean optim.lr?");
}

TEST(ConfigUnknown, KeyWithoutCloseMatchListsTheSection) {
  std::string m = error_of("optim:\n  zzzzzzzz: 1\n");
  EXPECT_HAS(m, "optim.zzzzzzzz: unknown key in configs/bad.yaml");
  EXPECT_HAS(m, "keys of optim: lr, min_lr");
  EXPECT_EQ(m.find("did you mean"), std::string::npos) << m;
}

TEST(ConfigUnknown, Section) {
  std::string m = error_of("modle:\n  d_model: 64\n");
  EXPECT_HAS(m, "modle: unknown section in configs/bad.yaml; did you mean model?");
  EXPECT_HAS(error_of("steps: 5\n"), "did you mean train.steps?");
  EXPECT_HAS(error_of("qqqqqqqq: {}\n"), "sections: model, moe, parallel");
}

TEST(ConfigUnknown, DuplicateKey) {
  EXPECT_HAS(error_of("train:\n  steps: 5\n  steps: 6\n"), "train.steps: is given twice in configs/bad.yaml");
}

TEST(ConfigType, WrongScalarType) {
  std::string m = error_of("model:\n  d_model: abc\n");
  EXPECT_HAS(m, "model.d_model: \"abc\" is not an integer in configs/bad.yaml");
  EXPECT_HAS(m, "expected an integer >= 1");
  EXPECT_HAS(error_of("train:\n  steps: 1.5\n"), "train.steps: \"1.5\" is not an integer");
  EXPECT_HAS(error_of("optim:\n  lr: fast\n"), "optim.lr: \"fast\" is not a number");
  EXPECT_HAS(error_of("moe:\n  norm_topk_prob: maybe\n"), "moe.norm_topk_prob: \"maybe\" is not a boolean");
  EXPECT_HAS(error_of("train:\n  seed: -1\n"), "train.seed: \"-1\" is not an unsigned integer");
}

TEST(ConfigType, ListOrMapOrNothingForAScalar) {
  EXPECT_HAS(error_of("train:\n  steps: [1, 2]\n"), "train.steps: got a list in configs/bad.yaml");
  EXPECT_HAS(error_of("moe:\n  router: {a: 1}\n"), "moe.router: got a mapping in configs/bad.yaml");
  EXPECT_HAS(error_of("model:\n  d_model:\n"), "model.d_model: got no value in configs/bad.yaml");
  EXPECT_HAS(error_of("model: 5\n"), "model: got a single value in configs/bad.yaml; expected a mapping");
  EXPECT_HAS(error_of("- model\n- moe\n"), "configs/bad.yaml: the top level is not a mapping");
}

TEST(ConfigType, YamlSyntaxErrorNamesFileAndLine) {
  std::string m = error_of("model:\n  d_model: [1, 2\n");
  EXPECT_HAS(m, "configs/bad.yaml:");
  EXPECT_HAS(m, "YAML syntax error");
}

TEST(ConfigRange, OutOfRange) {
  EXPECT_HAS(error_of("model:\n  d_model: 0\n"), "model.d_model: 0 is out of range in configs/bad.yaml; expected an integer >= 1");
  EXPECT_HAS(error_of("parallel:\n  zero_stage: 4\n"), "parallel.zero_stage: 4 is out of range in configs/bad.yaml; expected an integer in [0, 3]");
  EXPECT_HAS(error_of("optim:\n  beta1: 1.0\n"), "optim.beta1: 1.0 is out of range in configs/bad.yaml; expected a number in [0.0, 1.0)");
  EXPECT_HAS(error_of("optim:\n  lr: 0\n"), "optim.lr: 0 is out of range in configs/bad.yaml; expected a number > 0.0");
  EXPECT_HAS(error_of("moe:\n  capacity_factor: -0.5\n"), "moe.capacity_factor: -0.5 is out of range");
  EXPECT_HAS(error_of("train:\n  gpu_expert_padding: 9\n"),
             "train.gpu_expert_padding: 9 is out of range in configs/bad.yaml; expected a number in [0.0, 8.0]");
  EXPECT_HAS(error_of("moe:\n  aux_loss_coeff: .nan\n"), "moe.aux_loss_coeff:");
  EXPECT_HAS(error_of("model:\n  moe_every: -1\n"), "model.moe_every: -1 is out of range");
  EXPECT_HAS(error_of("data:\n  path: \"\"\n"), "data.path: is empty in configs/bad.yaml");
  EXPECT_HAS(error_of("checkpoint:\n  resume: \"\"\n"), "checkpoint.resume: is empty");
}

TEST(ConfigRange, BadEnum) {
  std::string m = error_of("moe:\n  router: relu\n");
  EXPECT_HAS(m, "moe.router: \"relu\" is not a valid choice in configs/bad.yaml; expected one of softmax sigmoid");
  EXPECT_HAS(error_of("moe:\n  drop_policy: random\n"), "moe.drop_policy: \"random\"");
  EXPECT_HAS(error_of("parallel:\n  schedule: zb\n"), "expected one of gpipe 1f1b");
  EXPECT_HAS(error_of("parallel:\n  recompute: all\n"), "expected one of none block attention moe");
  EXPECT_HAS(error_of("train:\n  precision: fp8\n"), "train.precision: \"fp8\"");
  EXPECT_HAS(error_of("train:\n  device: tpu\n"), "train.device: \"tpu\"");
}

TEST(ConfigConsistency, ModelShape) {
  EXPECT_HAS(error_of("model: {d_model: 66, n_heads: 4}\n"),
             "model.d_model: 66 is not divisible by model.n_heads = 4 in configs/bad.yaml");
  EXPECT_HAS(error_of("model: {n_heads: 4, n_kv_heads: 3}\n"), "model.n_heads: 4 is not divisible by model.n_kv_heads = 3");
  EXPECT_HAS(error_of("model: {d_model: 12, n_heads: 4}\n"), "model.d_model: head_dim = model.d_model / model.n_heads = 3 is odd");
  EXPECT_HAS(error_of("moe: {num_experts: 4, top_k: 5}\n"), "moe.top_k: 5 is larger than moe.num_experts = 4");
  EXPECT_HAS(error_of("optim: {lr: 0.001, min_lr: 0.01}\n"), "optim.min_lr: 0.01 is larger than optim.lr = 0.001");
}

TEST(ConfigConsistency, ParallelDivisibility) {
  EXPECT_HAS(error_of("parallel: {tp: 3}\n"), "model.n_heads: 4 is not divisible by parallel.tp = 3");
  EXPECT_HAS(error_of("parallel: {tp: 4}\n"), "model.n_kv_heads: 2 is not divisible by parallel.tp = 4");
  EXPECT_HAS(error_of("model: {ffn_hidden: 129}\nparallel: {tp: 2}\n"), "model.ffn_hidden: 129 is not divisible by parallel.tp = 2");
  EXPECT_HAS(error_of("parallel: {dp: 3, ep: 3}\ntrain: {batch_size: 3}\n"),
             "moe.num_experts: 4 is not divisible by parallel.ep = 3");
  EXPECT_HAS(error_of("moe: {expert_hidden: 64}\nparallel: {dp: 3, etp: 3}\ntrain: {batch_size: 3}\n"),
             "moe.expert_hidden: 64 is not divisible by parallel.etp = 3");
  EXPECT_HAS(error_of("parallel: {pp: 3}\n"), "model.n_layers: 2 is not divisible by parallel.pp = 3");
  EXPECT_HAS(error_of("parallel: {microbatches: 3}\ntrain: {batch_size: 16}\n"),
             "train.batch_size: 16 is not divisible by parallel.dp * parallel.microbatches = 1 * 3");
  EXPECT_HAS(error_of("parallel: {dp: 2, ep: 4}\n"),
             "parallel.ep: parallel.ep * parallel.etp = 4 * 1 does not divide parallel.dp * parallel.tp = 2 * 1");
}

TEST(ConfigOverride, AppliedInOrderAndTyped) {
  Config c = parse_config("train: {steps: 10}\n", "o.yaml",
                          {"train.steps=20", "train.steps=30", "optim.lr=5e-3", "moe.norm_topk_prob=false",
                           "data.path=corpora/x y", "train.seed=18446744073709551615", "moe.router=sigmoid",
                           "checkpoint.dir=", " model.seq_len = 128"});
  EXPECT_EQ(c.train.steps, 30);
  EXPECT_EQ(c.optim.lr, 5e-3);
  EXPECT_FALSE(c.moe.norm_topk_prob);
  EXPECT_EQ(c.data.path, "corpora/x y");
  EXPECT_EQ(c.train.seed, 18446744073709551615ull);
  EXPECT_EQ(c.moe.router, "sigmoid");
  EXPECT_EQ(c.checkpoint.dir, "");
  EXPECT_EQ(c.model.seq_len, 128);
}

TEST(ConfigOverride, ValidatedLikeTheFile) {
  std::string m = error_of("", {"model.d_model=abc"});
  EXPECT_HAS(m, "model.d_model: \"abc\" is not an integer in --set model.d_model=abc (config configs/bad.yaml)");
  EXPECT_HAS(error_of("", {"train.steps=[1, 2]"}), "train.steps: got a list in --set");
  EXPECT_HAS(error_of("", {"train.steps=0"}), "train.steps: 0 is out of range in --set train.steps=0");
  // Cross-key checks run after all overrides.
  EXPECT_HAS(error_of("", {"model.n_heads=3"}), "model.d_model: 64 is not divisible by model.n_heads = 3 in configs/bad.yaml with its --set overrides");
  parse_config("", "ok.yaml", {"model.n_heads=8", "model.n_kv_heads=4"});
}

TEST(ConfigOverride, UnknownKey) {
  std::string m = error_of("", {"model.d_modle=3"});
  EXPECT_HAS(m, "model.d_modle: unknown key in --set model.d_modle=3 (config configs/bad.yaml); did you mean model.d_model?");
  EXPECT_HAS(error_of("", {"modle.d_model=3"}), "modle.d_model: unknown section modle in --set modle.d_model=3 (config configs/bad.yaml); did you mean model.d_model?");
  EXPECT_HAS(error_of("", {"steps=3"}), "steps: unknown section in --set steps=3 (config configs/bad.yaml); did you mean train.steps?");
}

TEST(ConfigOverride, MalformedSyntax) {
  EXPECT_HAS(error_of("", {"train.steps"}), "--set train.steps: malformed override (config configs/bad.yaml)");
  EXPECT_HAS(error_of("", {"=5"}), "--set =5: malformed override (config configs/bad.yaml)");
  EXPECT_HAS(error_of("", {"train=5"}), "--set train=5: train is a section, not a key (config configs/bad.yaml)");
  EXPECT_HAS(error_of("", {".steps=5"}), "--set .steps=5: malformed key .steps (config configs/bad.yaml)");
}

TEST(ConfigLayout, WorldSizeMustMatch) {
  Config c = parse_config("parallel: {dp: 2, tp: 2}\n", "l.yaml", {});
  validate_layout(c, 4);
  std::string m = layout_error_of(c, 8);
  EXPECT_HAS(m, "parallel.dp * parallel.tp * parallel.pp: 2 * 2 * 1 = 4 but the world has 8 processes in l.yaml");
  EXPECT_HAS(m, "launch 4 processes");
  Config p = parse_config("parallel: {dp: 2, pp: 2, ep: 2}\n", "l.yaml", {});
  validate_layout(p, 4);
  EXPECT_HAS(layout_error_of(p, 2), "= 4 but the world has 2 processes");
}

TEST(ConfigLayout, DivisibilityOfAChangedLayout) {
  Config c = parse_config("", "l.yaml", {});
  c.parallel.ep = 3;
  c.parallel.dp = 3;
  EXPECT_HAS(layout_error_of(c, 3), "moe.num_experts: 4 is not divisible by parallel.ep = 3 in l.yaml");
  c = parse_config("", "l.yaml", {});
  c.parallel.tp = 4;
  EXPECT_HAS(layout_error_of(c, 4), "model.n_kv_heads: 2 is not divisible by parallel.tp = 4");
  c = parse_config("", "l.yaml", {});
  c.parallel.dp = 2;
  c.parallel.ep = 2;
  c.parallel.etp = 2;
  EXPECT_HAS(layout_error_of(c, 2), "parallel.ep * parallel.etp = 2 * 2 does not divide parallel.dp * parallel.tp = 2 * 1");
  c.parallel.tp = 2;  // n_heads 4, n_kv_heads 2, ffn_hidden 128 all split over 2
  validate_layout(c, 4);
}

TEST(ConfigSuggest, EditDistanceCountsASwapAsOneEdit) {
  EXPECT_EQ(config_detail::edit_distance("d_modle", "d_model"), 1u);
  EXPECT_EQ(config_detail::edit_distance("", "abc"), 3u);
  EXPECT_EQ(config_detail::edit_distance("top_k", "top_k"), 0u);
  EXPECT_EQ(config_detail::edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace moe
