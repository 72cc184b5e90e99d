#include "src/train/precision_weights.h"

#include <algorithm>

#include "kernels/cpu/half.h"

namespace moe {

bool ComputeWeights::rounds(const std::string& name) {
  const bool norm = name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
  return !norm && name.find(".router.") == std::string::npos;
}

ComputeWeights::ComputeWeights(const Config& c, const ParamTable& table) : prec_(parse_precision(c.train.precision)) {
  if (prec_ == Precision::fp32) return;
  for (const ParamInfo& p : table.params()) rounded_.push_back(rounds(p.name));
  buf_.assign(size_t(table.total()), 0.0f);
  p_ = bind_params(c, table, buf_.data());
}

const ModelParams& ComputeWeights::refresh(const ModelState& model) {
  if (prec_ == Precision::fp32) return model.p;
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const float* src = model.params.data() + ps[i].offset;
    float* dst = buf_.data() + ps[i].offset;
    if (rounded_[i]) half::round_to(dst, src, ps[i].numel, prec_);
    else std::copy(src, src + ps[i].numel, dst);
  }
  return p_;
}

void add_precision_metrics(nlohmann::json& rec, const ComputeWeights& w, const LossScaler& s) {
  if (w.precision() != Precision::fp32) {
    rec["mem_compute_weights"] = w.bytes();
    rec["mem_bytes"] = rec.value("mem_bytes", int64_t(0)) + w.bytes();
  }
  if (s.enabled()) {
    rec["loss_scale"] = s.scale();
    rec["skipped_steps"] = s.skipped_steps();
  }
}

}  // namespace moe
