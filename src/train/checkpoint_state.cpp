#include "src/train/checkpoint_state.h"

#include "src/core/error.h"
#include "src/train/checkpoint.h"

namespace moe {

namespace {

std::vector<ckpt::TensorRef> state_tensors(ModelState& model, AdamW* optim) {
  std::vector<ckpt::TensorRef> out;
  for (const auto& p : model.table.params()) {
    out.push_back({"param/" + p.name, p.shape, model.params.data() + p.offset});
    if (optim && p.trainable) {
      out.push_back({"adam_m/" + p.name, p.shape, optim->m().data() + p.offset});
      out.push_back({"adam_v/" + p.name, p.shape, optim->v().data() + p.offset});
    }
  }
  return out;
}

nlohmann::json layout_of(const Config& c) {
  const auto& p = c.parallel;
  return {{"dp", p.dp}, {"tp", p.tp}, {"pp", p.pp}, {"ep", p.ep}, {"etp", p.etp}, {"zero_stage", p.zero_stage}};
}

}  // namespace

std::optional<std::string> find_resume_checkpoint(const Config& c, const std::string& root) {
  const std::string& r = c.checkpoint.resume;
  if (r == "never") return std::nullopt;
  if (r == "auto") return ckpt::latest(root);
  return ckpt::resolve(r);
}

void save_training_state(const Config& c, const std::string& root, int64_t step, ModelState& model, AdamW& optim,
                         const data::ShardedLoader& loader, comm::Communicator& world) {
  ckpt::SaveRequest req;
  req.root = root;
  req.step = step;
  req.rank = world.rank();
  req.world = world.size();
  req.layout = layout_of(c);
  req.meta = {{"config", dump_config(c)}, {"optimizer_step", optim.steps_done()}, {"loader", loader.state()}};
  req.keep = c.checkpoint.keep;
  if (world.rank() == 0) req.tensors = state_tensors(model, &optim);  // replicated: rank 0 writes it
  ckpt::save(
      req, [&] { world.barrier(); },
      [&](const std::string& s) { return world.allgather_string(s); });
}

int64_t load_training_state(const std::string& dir, ModelState& model, AdamW& optim, data::ShardedLoader& loader) {
  std::vector<ckpt::TensorRef> tensors = state_tensors(model, &optim);
  const nlohmann::json manifest = ckpt::read_manifest(dir);
  // Replicated state sits in rank 0's file whatever the world size was.
  ckpt::Loaded l = ckpt::load(dir, 0, manifest.value("world", 1), tensors);
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
