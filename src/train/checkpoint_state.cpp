#include "src/train/checkpoint_state.h"

#include "src/core/error.h"
#include "src/train/checkpoint.h"

namespace moe {

namespace {

enum class Part { all, replicated, experts };

std::vector<ckpt::TensorRef> state_tensors(ModelState& model, AdamW* optim, Part part = Part::all) {
  std::vector<ckpt::TensorRef> out;
  for (const auto& p : model.table.params()) {
    if ((part == Part::replicated && p.shard.split_dim >= 0) || (part == Part::experts && p.shard.split_dim < 0))
      continue;
    out.push_back({"param/" + p.name, p.shape, model.params.data() + p.offset});
    if (optim && p.trainable) {
      out.push_back({"adam_m/" + p.name, p.shape, optim->m().data() + p.offset});
      out.push_back({"adam_v/" + p.name, p.shape, optim->v().data() + p.offset});
    }
  }
  return out;
}

// The world rank that writes expert slice j: edp index 0, ep index j (first stage, etp 0).
int expert_writer(const comm::GridShape& s, int j) { return j * s.etp; }

nlohmann::json layout_of(const Config& c, const comm::GridShape& s) {
  const auto& p = c.parallel;
  nlohmann::json slices = nlohmann::json::array();
  const int64_t per = c.moe.num_experts / p.ep;
  for (int j = 0; j < s.ep; ++j)
    slices.push_back({{"ep_rank", j}, {"rank", expert_writer(s, j)}, {"split_dim", 0}, {"offset", j * per},
                      {"count", per}});
  return {{"dp", p.dp},   {"tp", p.tp},   {"pp", p.pp}, {"ep", p.ep}, {"etp", p.etp}, {"zero_stage", p.zero_stage},
          {"expert_slices", slices}};
}

}  // namespace

std::optional<std::string> find_resume_checkpoint(const Config& c, const std::string& root) {
  const std::string& r = c.checkpoint.resume;
  if (r == "never") return std::nullopt;
  if (r == "auto") return ckpt::latest(root);
  return ckpt::resolve(r);
}

void save_training_state(const Config& c, const std::string& root, int64_t step, ModelState& model, AdamW& optim,
                         const data::ShardedLoader& loader, const comm::ProcessGrid& grid) {
  comm::Communicator& world = *grid.world;
  ckpt::SaveRequest req;
  req.root = root;
  req.step = step;
  req.rank = world.rank();
  req.world = world.size();
  req.layout = layout_of(c, grid.shape);
  req.meta = {{"config", dump_config(c)}, {"optimizer_step", optim.steps_done()}, {"loader", loader.state()}};
  req.keep = c.checkpoint.keep;
  if (world.rank() == 0) req.tensors = state_tensors(model, &optim, Part::replicated);  // written once
  const bool writes_slice = grid.coord.edp == 0 && grid.coord.etp == 0 && grid.coord.pp == 0;
  if (writes_slice) {
    std::vector<ckpt::TensorRef> experts = state_tensors(model, &optim, Part::experts);
    req.tensors.insert(req.tensors.end(), experts.begin(), experts.end());
  }
  ckpt::save(
      req, [&] { world.barrier(); },
      [&](const std::string& s) { return world.allgather_string(s); });
}

int64_t load_training_state(const std::string& dir, ModelState& model, AdamW& optim, data::ShardedLoader& loader,
                            const comm::ProcessGrid& grid) {
  const nlohmann::json manifest = ckpt::read_manifest(dir);
  const int world = manifest.value("world", 1);
  const int64_t saved_ep = manifest.contains("layout") ? manifest["layout"].value("ep", int64_t(1)) : 1;
  if (saved_ep != grid.shape.ep)
    throw DataError("checkpoint " + dir + " was written with parallel.ep=" + std::to_string(saved_ep) +
                    " and this run has parallel.ep=" + std::to_string(grid.shape.ep) +
                    "; resume with the same parallel.ep (expert slices are not resharded)");
  // Replicated state sits in rank 0's file whatever the world size was; expert slice j in the
  // file of the rank the manifest names for it.
  std::vector<ckpt::TensorRef> tensors = state_tensors(model, &optim, Part::replicated);
  ckpt::Loaded l = ckpt::load(dir, 0, world, tensors);
  std::vector<ckpt::TensorRef> experts = state_tensors(model, &optim, Part::experts);
  if (!experts.empty()) {
    int writer = expert_writer(grid.shape, grid.coord.ep);
    for (const auto& sl : manifest["layout"].value("expert_slices", nlohmann::json::array()))
      if (sl.value("ep_rank", -1) == grid.coord.ep) writer = sl.value("rank", writer);
    ckpt::load(dir, writer, world, experts);
  }
  optim.set_steps_done(l.meta.at("optimizer_step").get<int64_t>());
  loader.restore(l.meta.at("loader"));
  return l.step;
}

void load_weights(const std::string& dir, ModelState& model) {
  std::vector<ckpt::TensorRef> tensors = state_tensors(model, nullptr);
  const nlohmann::json manifest = ckpt::read_manifest(dir);
  ckpt::load(dir, 0, manifest.value("world", 1), tensors);
}

}  // namespace moe
