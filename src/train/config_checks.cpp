// Checks that involve more than one key, and the parallel layout against the world size.
#include <string>

#include "src/core/error.h"
#include "src/train/config_schema.h"

namespace moe {
namespace config_detail {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

void require_divisible(const std::string& key, int64_t value, const std::string& by_key, int64_t by,
                       const Origin& where) {
  if (value % by == 0) return;
  fail(key, str(value) + " is not divisible by " + by_key + " = " + str(by), where,
       "make " + key + " a multiple of " + by_key);
}

// Routing variants (docs/routing.md): which keys combine.
void check_moe_routing(const MoeConfig& m, const Origin& where) {
  require_divisible("moe.num_experts", m.num_experts, "moe.num_groups", m.num_groups, where);
  if (m.topk_groups > m.num_groups) {
    fail("moe.topk_groups", str(m.topk_groups) + " is larger than moe.num_groups = " + str(m.num_groups), where,
         "set topk_groups <= num_groups");
  }
  const int64_t reachable = m.topk_groups * (m.num_experts / m.num_groups);
  if (m.top_k > reachable) {
    fail("moe.top_k", str(m.top_k) + " is larger than the " + str(reachable) +
                          " experts in moe.topk_groups groups of num_experts / num_groups",
         where, "raise moe.topk_groups or lower moe.top_k");
  }
  if (m.router == "sigmoid" && m.score_order != "softmax_then_topk") {
    fail("moe.score_order", m.score_order + " applies to the softmax router only", where,
         "remove moe.score_order or use moe.router: softmax");
  }
  if (m.router == "expert_choice") {
    if (m.num_groups != 1)
      fail("moe.num_groups", "group-limited routing is a token-choice feature", where,
           "set num_groups: 1 with router: expert_choice");
    if (m.bias_update_rate > 0)
      fail("moe.bias_update_rate", "expert choice is balanced by construction and has no selection bias", where,
           "set bias_update_rate: 0 with router: expert_choice");
  }
}

}  // namespace

void check_layout_divisibility(const Config& c, const Origin& where) {
  const ModelConfig& m = c.model;
  const ParallelConfig& p = c.parallel;
  // Tensor parallel splits attention heads (query and key/value) and the dense FFN hidden units.
  require_divisible("model.n_heads", m.n_heads, "parallel.tp", p.tp, where);
  require_divisible("model.n_kv_heads", m.n_kv_heads, "parallel.tp", p.tp, where);
  require_divisible("model.ffn_hidden", m.ffn_hidden, "parallel.tp", p.tp, where);
  require_divisible("moe.num_experts", c.moe.num_experts, "parallel.ep", p.ep, where);
  require_divisible("moe.expert_hidden", c.moe.expert_hidden, "parallel.etp", p.etp, where);
  check_pipeline_layout(c, where);  // src/train/config_pipeline.cpp
  // Each step splits the global batch over dp replicas, then each replica's share into microbatches.
  if (c.train.batch_size % (p.dp * p.microbatches) != 0) {
    fail("train.batch_size", str(c.train.batch_size) + " is not divisible by parallel.dp * parallel.microbatches = " +
                                 str(p.dp) + " * " + str(p.microbatches),
         where, "make batch_size a multiple of dp * microbatches");
  }
  // MoE layers regroup the dp x tp ranks of a stage as edp x ep x etp (parallel folding).
  if ((p.dp * p.tp) % (p.ep * p.etp) != 0) {
    fail("parallel.ep", "parallel.ep * parallel.etp = " + str(p.ep) + " * " + str(p.etp) +
                            " does not divide parallel.dp * parallel.tp = " + str(p.dp) + " * " + str(p.tp),
         where, "choose ep and etp so that ep * etp divides dp * tp (MoE parallel folding)");
  }
}

void check_consistency(const Config& c, const Origin& where) {
  const ModelConfig& m = c.model;
  require_divisible("model.d_model", m.d_model, "model.n_heads", m.n_heads, where);
  require_divisible("model.n_heads", m.n_heads, "model.n_kv_heads", m.n_kv_heads, where);
  if (m.head_dim() % 2 != 0) {
    fail("model.d_model", "head_dim = model.d_model / model.n_heads = " + str(m.head_dim()) + " is odd", where,
         "RoPE rotates pairs of dimensions: choose d_model and n_heads so that d_model / n_heads is even");
  }
  if (c.moe.top_k > c.moe.num_experts) {
    fail("moe.top_k", str(c.moe.top_k) + " is larger than moe.num_experts = " + str(c.moe.num_experts), where,
         "set top_k <= num_experts");
  }
  check_moe_routing(c.moe, where);
  if (c.optim.min_lr > c.optim.lr) {
    fail("optim.min_lr", format_real(c.optim.min_lr) + " is larger than optim.lr = " + format_real(c.optim.lr),
         where, "set min_lr <= lr");
  }
  check_layout_divisibility(c, where);
}

}  // namespace config_detail

void validate_layout(const Config& c, int64_t world_size) {
  MOE_CHECK(world_size >= 1, "world size must be positive");
  const ParallelConfig& p = c.parallel;
  config_detail::Origin where{c.source, ""};
  const int64_t product = p.dp * p.tp * p.pp;
  if (product != world_size) {
    config_detail::fail(
        "parallel.dp * parallel.tp * parallel.pp",
        std::to_string(p.dp) + " * " + std::to_string(p.tp) + " * " + std::to_string(p.pp) + " = " +
            std::to_string(product) + " but the world has " + std::to_string(world_size) + " processes",
        where,
        "set parallel.dp, parallel.tp and parallel.pp (e.g. with --set) so that dp * tp * pp = " +
            std::to_string(world_size) + ", or launch " + std::to_string(product) + (product == 1 ? " process" : " processes"));
  }
  config_detail::check_layout_divisibility(c, where);
}

}  // namespace moe
