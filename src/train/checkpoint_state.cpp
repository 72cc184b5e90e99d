#include "src/train/checkpoint_state.h"

#include <functional>

#include "src/core/error.h"
#include "src/train/checkpoint.h"
#include "src/train/export.h"
#include "src/train/reshard.h"

namespace moe {

namespace {

// The parameters (and their moments) for which keep(i) holds.
std::vector<ckpt::TensorRef> state_tensors(ModelState& model, AdamW* optim, const std::function<bool(size_t)>& keep) {
  std::vector<ckpt::TensorRef> out;
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps[i];
    if (!keep(i)) continue;
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

// The world rank that writes expert slice j: edp index 0, ep index j (first stage, etp 0; under
// etp its etp peers write the other hidden-unit parts of the slice, listed in tensor_slices).
int expert_writer(const comm::GridShape& s, int j) { return j * s.etp; }

// Whether this rank writes its copy of p: each distinct slice once, by the rank with index 0 in
// every group over which that slice repeats. Dense tensors repeat over dp (and over tp unless
// split over it); routed-expert tensors over edp (and over ep, etp unless split over them).
bool writes_param(const ParamInfo& p, const comm::GridCoord& k) {
  if (k.pp != 0) return false;
  if (p.shard.expert) return k.edp == 0 && (p.shard.group == "ep" || k.ep == 0) && (p.shard.etp_dim >= 0 || k.etp == 0);
  return k.dp == 0 && (p.shard.group == "tp" || k.tp == 0);
}

// Collective over the world: every rank reports the slices it writes (layout.tensor_slices).
nlohmann::json layout_of(const Config& c, const comm::ProcessGrid& grid, const ParamTable& table) {
  const auto& p = c.parallel;
  const comm::GridShape& s = grid.shape;
  nlohmann::json slices = nlohmann::json::array();
  const int64_t per = c.moe.num_experts / p.ep;
  for (int j = 0; j < s.ep; ++j)
    slices.push_back({{"ep_rank", j}, {"rank", expert_writer(s, j)}, {"split_dim", 0}, {"offset", j * per},
                      {"count", per}});
  const std::string mine = written_slices(
      table, [&](size_t i) { return writes_param(table.params()[i], grid.coord); }, grid.world->rank());
  // tensor_slices (per tensor, a box per piece) is what loading reads; expert_slices stays for tools.
  return {{"dp", p.dp},   {"tp", p.tp},   {"pp", p.pp}, {"ep", p.ep}, {"etp", p.etp}, {"zero_stage", p.zero_stage},
          {"expert_slices", slices}, {"tensor_slices", merge_tensor_slices(grid.world->allgather_string(mine))}};
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
  req.layout = layout_of(c, grid, model.table);
  req.meta = {{"config", dump_config(c)}, {"optimizer_step", optim.steps_done()}, {"loader", loader.state()}};
  req.meta.update(extra_meta);  // e.g. the fp16 loss scaler's state, next to the optimizer step
  req.keep = c.checkpoint.keep;
  req.tensors = state_tensors(model, &optim, [&](size_t i) { return writes_param(model.table.params()[i], grid.coord); });
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
