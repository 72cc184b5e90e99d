// The resolved configuration (DESIGN.md, "Config"). Every key here is validated on load; unknown
// keys are errors with a did-you-mean. Documented key by key in docs/config.md.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe {

struct ModelConfig {
  int64_t vocab_size = 260;
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t seq_len = 64;
  int64_t ffn_hidden = 128;     // dense SwiGLU hidden size
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t moe_every = 1;        // layer i is MoE when (i + 1) % moe_every == 0; 0 = no MoE layers
  int64_t first_dense_layers = 0;  // the first layers stay dense whatever moe_every says (DeepSeek-V3: 3)
  int64_t head_dim() const { return d_model / n_heads; }
  bool is_moe_layer(int64_t i) const {
    return moe_every > 0 && i >= first_dense_layers && (i + 1) % moe_every == 0;
  }
};

struct MoeConfig {
  int64_t num_experts = 4;
  int64_t top_k = 2;
  int64_t expert_hidden = 64;
  int64_t num_shared_experts = 0;
  double capacity_factor = 0.0;      // 0 = dropless
  std::string drop_policy = "probs"; // probs | position
  bool norm_topk_prob = true;
  double aux_loss_coeff = 0.01;
  double z_loss_coeff = 0.001;
  double bias_update_rate = 0.0;     // aux-loss-free balancing; 0 = off
  std::string router = "softmax";    // softmax | sigmoid | expert_choice (docs/routing.md)
  std::string score_order = "softmax_then_topk";  // softmax router: softmax_then_topk | topk_then_softmax
  double router_scale = 1.0;         // multiplies the combine weights (DeepSeek-V3 routed_scaling_factor)
  double router_jitter = 0.0;        // training only: router input *= U[1-eps, 1+eps]; 0 = off
  int64_t num_groups = 1;            // group-limited routing: experts in num_groups groups
  int64_t topk_groups = 1;           // groups each token may route to (<= num_groups)
  std::string aux_loss_type = "switch";  // switch (global batch) | seq (per sequence) | none
};

struct ParallelConfig {
  int64_t dp = 1, tp = 1, pp = 1, ep = 1, etp = 1;
  int64_t zero_stage = 0;
  int64_t microbatches = 1;
  std::string schedule = "1f1b";  // gpipe | 1f1b
  std::string recompute = "none"; // none | block | attention | moe
  double timeout_s = 300.0;
  std::vector<int64_t> pp_layout;  // blocks per (virtual) pipeline stage (pp x virtual_stages entries); empty = even
  int64_t virtual_stages = 1;      // model chunks per pipeline stage (interleaved 1F1B when > 1)
};

struct TrainConfig {
  int64_t steps = 300;
  int64_t batch_size = 8;          // global sequences per step
  uint64_t seed = 1234;
  std::string precision = "fp32";  // fp32 | bf16 | fp16
  std::string device = "cpu";      // cpu | cuda | auto (src/train/device_select.h)
  int64_t log_every = 10;
  int64_t eval_every = 0;          // 0 = no periodic eval
  int64_t eval_batches = 4;
  double loss_scale_init = 65536.0;  // fp16 dynamic loss scaling (src/train/loss_scaler.h)
  int64_t loss_scale_window = 1000;  // good steps before the scale doubles
  double gpu_expert_padding = 1.25;  // GPU expert buffers hold this x routed rows (moe/expert_padding.h); 0 = grouped GEMM only
};

struct OptimConfig {
  double lr = 3e-3, min_lr = 3e-4;
  int64_t warmup_steps = 20;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;          // 0 = no clipping
};

struct DataConfig {
  std::string path = "datasets/fortunes";  // a prepared dataset folder (relative to the working dir)
  int64_t prefetch = 4;                // prefetch queue depth (batches)
};

struct CheckpointConfig {
  std::string dir;                  // default RUN_DIR/checkpoints
  int64_t every = 0;                // 0 = only at the end
  int64_t keep = 3;
  std::string resume = "auto";      // auto | never | PATH
};

struct ProfileConfig {
  bool load_balance = true;
  int64_t every = 1;
  std::string trace = "";                  // Chrome trace of the phases: FILE.rankN.json per rank; "" = off
  int64_t trace_first = 1, trace_last = 3;  // trace_steps "A-B": completed steps A..B (1-based)
};

// `moe finetune` (and `moe train`): parameter groups that training leaves untouched
// (docs/finetune.md lists the groups and the tensors each one names).
struct FinetuneConfig {
  std::vector<std::string> freeze;  // embeddings attention router shared_experts experts dense_ffn norms output
                                    // all_but_experts
};

struct Config {
  ModelConfig model;
  MoeConfig moe;
  ParallelConfig parallel;
  TrainConfig train;
  OptimConfig optim;
  DataConfig data;
  CheckpointConfig checkpoint;
  ProfileConfig profile;
  FinetuneConfig finetune;
  std::string source;  // file the config came from (for messages)
};

// Loads FILE, applies `overrides` ("key.path=value", in order), validates everything.
// Throws ConfigError (exit code 2) naming the key and the file.
Config load_config(const std::string& file, const std::vector<std::string>& overrides);
// Same, from YAML text (tests; `source` names it in messages).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides);
// The resolved config as YAML (every key, so the run directory records what ran).
std::string dump_config(const Config& c);
// Checks that need the world size (dp*tp*pp == world, divisibility); ConfigError on failure.
void validate_layout(const Config& c, int64_t world_size);

}  // namespace moe
