#include "src/train/train_step.h"

#include <algorithm>
#include <chrono>

#include "src/core/error.h"
#include "src/train/micro_batches.h"

namespace moe {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Tags of the pipeline's point-to-point messages, named by the receiving virtual stage vs (of V):
// activations and gradients of micro-batch j.
int act_tag(int64_t j, int64_t vs, int64_t V) { return int(2 * ((j * V + vs) % 16384)); }
int grad_tag(int64_t j, int64_t vs, int64_t V) { return act_tag(j, vs, V) + 1; }

}  // namespace

TrainStep::TrainStep(const Config& c, const comm::ProcessGrid& grid, int64_t local_rows,
                     const DispatcherFactory& make_dispatcher, comm::Communicator* tp, comm::Communicator* etp)
    : c_(c), grid_(grid), layout_(make_stage_layout(c)) {
  stage_ = grid.coord.pp;
  pp_ = c.parallel.pp;
  m_ = c.parallel.microbatches;
  v_ = c.parallel.virtual_stages;
  MOE_CHECK(local_rows % m_ == 0, "micro-batches must divide the local batch");
  micro_rows_ = local_rows / m_;
  global_tokens_ = double(c.train.batch_size * c.model.seq_len);
  ops_ = pipeline_schedule(c.parallel.schedule, pp_, stage_, m_, v_);
  const Config sc = micro_batch_config(c);
  final_backward_.assign(size_t(v_), 0);
  for (size_t k = 0; k < ops_.size(); ++k)
    if (ops_[k].kind == PipeOpKind::backward) final_backward_[size_t(ops_[k].chunk)] = k;
  for (int64_t chunk = 0; chunk < v_; ++chunk) {
    const int64_t vs = chunk * pp_ + stage_;
    const StageBlocks blocks{layout_.begin(vs), layout_.end(vs)};
    slot_base_.push_back(slots_.size());
    for (int64_t k = 0; k < max_in_flight(ops_, chunk); ++k)
      slots_.push_back(std::make_unique<Transformer>(sc, micro_rows_, make_dispatcher, tp, etp, blocks));
    for (int64_t i = blocks.begin; i < blocks.end; ++i)
      if (c.model.is_moe_layer(i)) moe_layers_.push_back(i);
  }
  slot_base_.push_back(slots_.size());
  sends_.resize(slots_.size());
  comm::Communicator* dp = grid.dp.get();
  reduce_ = [dp](std::vector<double>& v) { dp->allreduce_sum(v.data(), int64_t(v.size())); };
  stats_.resize(moe_layers_.size());
  a2a_sent_.assign(size_t(grid.ep->size()), 0);
}

// Pipeline waits are communication waits in the phase profile too.
void TrainStep::timed_recv(std::vector<float>& buf, int peer, int tag) {
  PhaseScope timed(Phase::comm_wait);
  const auto t = Clock::now();
  grid_.pp->recv(buf.data(), int64_t(buf.size() * sizeof(float)), peer, tag);
  wait_s_ += seconds_since(t);
}

void TrainStep::wait_sends(size_t slot) {
  if (sends_[slot].empty()) return;
  PhaseScope timed(Phase::comm_wait);
  const auto t = Clock::now();
  for (auto& r : sends_[slot]) r->wait();
  sends_[slot].clear();
  wait_s_ += seconds_since(t);
}

size_t TrainStep::slot_of(const PipeOp& op) const {
  const size_t base = slot_base_[size_t(op.chunk)], n = slot_base_[size_t(op.chunk) + 1] - base;
  return base + size_t(op.micro) % n;
}

// Virtual stage vs = chunk * pp + stage receives from the previous rank (ring order: the last
// rank's chunk c feeds the first rank's chunk c + 1) and sends to the next.
void TrainStep::forward(const PipeOp& op, Transformer& net, const int32_t* tokens, const ModelParams& p,
                        StepLosses& out) {
  const int64_t j = op.micro, vs = op.chunk * pp_ + stage_, last = layout_.stages() - 1;
  const int64_t T = c_.model.seq_len, dp = grid_.dp->size(), dp_rank = grid_.dp->rank();
  const int32_t* rows = tokens + j * micro_rows_ * (T + 1);
  // This rank's rows of global micro-batch j start at global row (j * dp + dp_rank) * micro_rows
  // (data::LoaderOptions::microbatches).
  net.set_routing_step(step_, (j * dp + dp_rank) * micro_rows_ * T, /*training=*/true);
  if (vs == 0) {
    net.before_use(-1, false);
    net.embed_forward(rows, p);
    net.after_use(-1, false);
  } else {
    if (vs == last) net.load_tokens(rows);
    timed_recv(net.residual(), int((stage_ + pp_ - 1) % pp_), act_tag(j, vs, last + 1));
  }
  for (int64_t i = layout_.begin(vs); i < layout_.end(vs); ++i) {
    net.before_use(i, false);
    net.block_forward(i, p.blocks[size_t(i)], reduce_, out);
    net.after_use(i, false);
  }
  if (vs == last) {
    net.before_use(layout_.num_layers, false);
    net.head_forward(p, out);
    net.after_use(layout_.num_layers, false);
  } else {
    auto& x = net.residual();
    sends_[slot_of(op)].push_back(
        grid_.pp->isend(x.data(), int64_t(x.size() * sizeof(float)), int((stage_ + 1) % pp_), act_tag(j, vs + 1, last + 1)));
  }
  accumulate_stats(net, vs, j == 0);
}

void TrainStep::backward(const PipeOp& op, Transformer& net, const ModelParams& p, ModelState& model, bool final,
                         GradBuckets& buckets) {
  const int64_t vs = op.chunk * pp_ + stage_, last = layout_.stages() - 1;
  // Gradients are final only after the chunk's last backward (later chunks finish earlier): only
  // then may buckets reduce them.
  const auto ready = [&](int64_t at) {
    if (final) buckets.on_stage_ready(at, model.grads.data());
  };
  if (vs == last) {
    net.before_use(layout_.num_layers, true);
    net.head_backward(p, model.g, global_tokens_);
    net.after_use(layout_.num_layers, true);
    ready(layout_.num_layers);
  } else {
    timed_recv(net.residual_grad(), int((stage_ + 1) % pp_), grad_tag(op.micro, vs, last + 1));
  }
  for (int64_t i = layout_.end(vs) - 1; i >= layout_.begin(vs); --i) {
    net.before_use(i, true);
    net.block_backward(i, p.blocks[size_t(i)], model.g.blocks[size_t(i)]);
    net.after_use(i, true);
    ready(i);
  }
  if (vs == 0) {
    net.embed_backward(model.g);
    ready(-1);
  } else {
    auto& dx = net.residual_grad();
    sends_[slot_of(op)].push_back(grid_.pp->isend(dx.data(), int64_t(dx.size() * sizeof(float)),
                                                  int((stage_ + pp_ - 1) % pp_), grad_tag(op.micro, vs - 1, last + 1)));
  }
}

StepLosses TrainStep::run(int64_t step, const int32_t* tokens, const ModelParams& weights, ModelState& model,
                          GradBuckets& buckets) {
  step_ = step;
  StepLosses out;
  const auto start = Clock::now();
  std::fill(a2a_sent_.begin(), a2a_sent_.end(), 0);
  for (size_t k = 0; k < ops_.size(); ++k) {
    const PipeOp& op = ops_[k];
    const size_t slot = slot_of(op);
    wait_sends(slot);  // the slot's buffers are about to be overwritten
    if (op.kind == PipeOpKind::forward)
      forward(op, *slots_[slot], tokens, weights, out);
    else
      backward(op, *slots_[slot], weights, model, k == final_backward_[size_t(op.chunk)], buckets);
    if (op.kind == PipeOpKind::backward) accumulate_a2a(*slots_[slot]);
  }
  for (size_t s = 0; s < slots_.size(); ++s) wait_sends(s);
  busy_s_ += seconds_since(start);
  buckets.finish(model.grads.data());
  if (pp_ > 1) {  // the last stage has the LM loss, each stage the aux and z losses of its layers
    double v[3] = {out.lm_sum, out.aux, out.z};
    grid_.pp->allreduce_sum(v, 3);
    out = {v[0], v[1], v[2]};
  }
  return out;
}

void TrainStep::set_param_hooks(ParamStageHooks* hooks) {
  for (auto& s : slots_) s->set_param_hooks(hooks);
}

int64_t TrainStep::activation_bytes() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s->activation_bytes();
  return n;
}

void TrainStep::add_pipeline_metrics(nlohmann::json& rec) {
  if (pp_ == 1) return;
  comm::Communicator& pp = *grid_.pp;
  const int64_t mine = activation_bytes();
  std::vector<int64_t> per(size_t(pp.size()), 0);
  pp.allgather(&mine, per.data(), int64_t(sizeof(int64_t)));
  double frac = busy_s_ > 0 ? wait_s_ / busy_s_ : 0.0;
  pp.allreduce_sum(&frac, 1);
  wait_s_ = busy_s_ = 0;
  rec["mem_activations"] = *std::max_element(per.begin(), per.end());
  rec["mem_activations_stage"] = per;
  const int64_t slots = this->slots();
  std::vector<int64_t> slots_per(size_t(pp.size()), 0);
  pp.allgather(&slots, slots_per.data(), int64_t(sizeof(int64_t)));
  rec["activation_slots_stage"] = slots_per;
  rec["bubble_frac"] = frac / double(pp.size());
  rec["bubble_frac_theory"] = theoretical_bubble(pp_, m_, v_);
}

}  // namespace moe
