#include "src/train/finetune.h"

#include <cstdio>

#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "src/train/checkpoint_state.h"
#include "src/train/export.h"

namespace moe {

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool in_freeze_group(const std::string& group, const std::string& name) {
  if (group == "embeddings") return name == "tok_embeddings.weight";
  if (group == "attention") return contains(name, ".attention.");  // wq wk wv wo, not attention_norm
  if (group == "router") return contains(name, ".moe.router.");
  if (group == "shared_experts") return contains(name, ".moe.shared.");
  if (group == "experts") return contains(name, ".moe.experts.");
  if (group == "dense_ffn") return contains(name, ".feed_forward.");
  if (group == "norms") return name == "norm.weight" || ends_with(name, "_norm.weight");
  if (group == "output") return name == "output.weight";
  if (group == "all_but_experts") return !contains(name, ".moe.experts.");
  MOE_CHECK(false, "unknown freeze group " + group + " (the config schema lists the valid ones)");
  return false;
}

std::vector<bool> frozen_params(const Config& c, const ParamTable& table) {
  const auto& groups = c.finetune.freeze;
  for (const auto& g : groups)
    if ((g == "router" || g == "all_but_experts") && c.moe.bias_update_rate > 0)
      throw ConfigError("finetune.freeze in " + c.source + ": \"" + g +
                        "\" freezes the router, whose balancing bias moe.bias_update_rate = " +
                        std::to_string(c.moe.bias_update_rate) +
                        " keeps moving; set moe.bias_update_rate: 0 or do not freeze the router");
  std::vector<bool> frozen;
  for (const auto& p : table.params()) {
    bool f = false;
    for (const auto& g : groups) f = f || in_freeze_group(g, p.name);
    frozen.push_back(f);
  }
  return frozen;
}

int64_t restore_or_init(const Config& c, const TrainOptions& opt, const std::string& ckpt_root, ModelState& model,
                        AdamW& optim, data::ShardedLoader& loader, const comm::ProcessGrid& grid) {
  const bool lead = grid.world->rank() == 0;
  if (auto from = find_resume_checkpoint(c, ckpt_root)) {
    const int64_t step = load_training_state(*from, model, optim, loader, grid);
    if (lead) std::printf("resumed from %s at step %lld\n", from->c_str(), (long long)step);
    return step;
  }
  if (opt.init_from.empty()) return 0;
  if (!opt.keep_optimizer) {
    load_weights(opt.init_from, model);
  } else {
    if (is_exported_file(opt.init_from))
      throw DataError(opt.init_from + " is an exported model, which holds weights only: drop --keep-optimizer, or "
                      "start from the checkpoint it was exported from");
    const nlohmann::json meta = load_state_tensors(ckpt::resolve(opt.init_from), model, &optim);
    optim.set_steps_done(meta.at("optimizer_step").get<int64_t>());  // AdamW's bias correction goes on
  }
  if (lead && !opt.quiet)
    std::printf("initialised from %s (%s)\n", opt.init_from.c_str(),
                opt.keep_optimizer ? "weights and optimizer state" : "weights; fresh optimizer state");
  return 0;
}

}  // namespace moe
