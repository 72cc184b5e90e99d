#include "src/train/checkpoint_state.h"

#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "src/train/export.h"
#include "src/train/reshard.h"

namespace moe {

namespace {

enum class Part { all, replicated, experts };

std::vector<ckpt::TensorRef> state_tensors(ModelState& model, AdamW* optim, Part part = Part::all) {
  std::vector<ckpt::TensorRef> out;
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps[i];
    if ((part == Part::replicated && p.shard.split_dim >= 0) || (part == Part::experts && p.shard.split_dim < 0))
      continue;
    out.push_back({"param/" + p.name, p.shape, model.params.data() + p.offset});
    if (optim && optim->updates(i)) {  // frozen tensors have no optimizer state
      out.push_back({"adam_m/" + p.name, p.shape, optim->m_of(i)});
      out.push_back({"adam_v/" + p.name, p.shape, optim->v_of(i)});
    }
  }
  return out;
}

// The same tensors as boxes of their logical tensors, for loading from any layout.
std::vector<WantedTensor> wanted_tensors(ModelState& model, AdamW* optim) {
  std::vector<WantedTensor> out;
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps[i];
    const Box box = shard_box(p);
    out.push_back({"param/" + p.name, p.shard.global_shape, box, model.params.data() + p.offset});
    if (optim && optim->updates(i)) {
      out.push_back({"adam_m/" + p.name, p.shard.global_shape, box, optim->m_of(i)});
      out.push_back({"adam_v/" + p.name, p.shard.global_shape, box, optim->v_of(i)});
    }
  }
  return out;
}

// The world rank that writes expert slice j: edp index 0, ep index j (first stage, etp 0).
int expert_writer(const comm::GridShape& s, int j) { return j * s.etp; }

nlohmann::json layout_of(const Config& c, const comm::GridShape& s, const ParamTable& table) {
  const auto& p = c.parallel;
  nlohmann::json slices = nlohmann::json::array();
  std::vector<int> writers;
  const int64_t per = c.moe.num_experts / p.ep;
  for (int j = 0; j < s.ep; ++j) {
    slices.push_back({{"ep_rank", j}, {"rank", expert_writer(s, j)}, {"split_dim", 0}, {"offset", j * per},
                      {"count", per}});
    writers.push_back(expert_writer(s, j));
  }
  // tensor_slices (per tensor, a box per piece) is what loading reads; expert_slices stays for tools.
  return {{"dp", p.dp},   {"tp", p.tp},   {"pp", p.pp}, {"ep", p.ep}, {"etp", p.etp}, {"zero_stage", p.zero_stage},
          {"expert_slices", slices}, {"tensor_slices", tensor_slices(table, writers)}};
}

}  // namespace

std::optional<std::string> find_resume_checkpoint(const Config& c, const std::string& root) {
  const std::string& r = c.checkpoint.resume;
  if (r == "never") return std::nullopt;
  if (r == "auto") return ckpt::latest(root);
  return ckpt::resolve(r);
}

void save_training_state(const Config& c, const std::string& root, int64_t step, ModelState& model, AdamW& optim,
                         const data::ShardedLoader& loader, const comm::ProcessGrid& grid,
                         const nlohmann::json& extra_meta) {
  comm::Communicator& world = *grid.world;
  ckpt::SaveRequest req;
  req.root = root;
  req.step = step;
  req.rank = world.rank();
  req.world = world.size();
  req.layout = layout_of(c, grid.shape, model.table);
  req.meta = {{"config", dump_config(c)}, {"optimizer_step", optim.steps_done()}, {"loader", loader.state()}};
  req.meta.update(extra_meta);  // e.g. the fp16 loss scaler's state, next to the optimizer step
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

nlohmann::json load_state_tensors(const std::string& dir, ModelState& model, AdamW* optim) {
  CheckpointIndex index(dir);
  std::vector<WantedTensor> wanted = wanted_tensors(model, optim);
  return read_resharded(index, wanted);
}

int64_t load_training_state(const std::string& dir, ModelState& model, AdamW& optim, data::ShardedLoader& loader,
                            const comm::ProcessGrid& grid) {
  (void)grid;  // any saved (dp, ep) layout loads into this grid's shards
  const nlohmann::json meta = load_state_tensors(dir, model, &optim);
  optim.set_steps_done(meta.at("optimizer_step").get<int64_t>());
  loader.restore(meta.at("loader"));  // the loader's state is a step count: layout independent
  return ckpt::read_manifest(dir).at("step").get<int64_t>();
}

void load_weights(const std::string& path, ModelState& model) {
  if (is_exported_file(path)) {
    import_weights(path, model);
    return;
  }
  load_state_tensors(ckpt::resolve(path), model, nullptr);
}

}  // namespace moe
