#include "src/train/precision_weights.h"

#include <algorithm>

#include "kernels/cpu/half.h"
#include "src/core/error.h"
#include "src/core/page_memory.h"

namespace moe {

bool ComputeWeights::rounds(const std::string& name) {
  const bool norm = name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
  return !norm && name.find(".router.") == std::string::npos;
}

ComputeWeights::ComputeWeights(const Config& c, const ParamTable& table) : prec_(parse_precision(c.train.precision)) {
  if (prec_ == Precision::fp32) return;
  for (const ParamInfo& p : table.params()) {
    rounded_.push_back(rounds(p.name));
    offset_.push_back(p.offset);
  }
  fresh_.assign(rounded_.size(), false);
  buf_.resize(size_t(table.total()));
  p_ = bind_params(c, table, buf_.data());
}

const ModelParams& ComputeWeights::refresh(const ModelState& model) {
  if (prec_ == Precision::fp32) return model.p;
  if (per_range_) return p_;  // each range was rounded when its stage was gathered
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    if ((i < skip_.size() && skip_[i]) || fresh_[i]) continue;
    const float* src = model.params.data() + ps[i].offset;
    float* dst = buf_.data() + ps[i].offset;
    if (rounded_[i]) half::round_to(dst, src, ps[i].numel, prec_);
    else std::copy(src, src + ps[i].numel, dst);
  }
  invalidate();
  return p_;
}

float* ComputeWeights::fused_target(size_t i) {
  if (prec_ == Precision::fp32 || per_range_ || !rounded_[i] || (i < skip_.size() && skip_[i])) return nullptr;
  fresh_[i] = true;
  return buf_.data() + offset_[i];
}

void ComputeWeights::skip_tensors(const ParamTable& table, const std::vector<bool>& skip) {
  if (prec_ == Precision::fp32) return;
  skip_ = skip;
  const auto& ps = table.params();
  for (size_t i = 0; i < ps.size() && i < skip.size(); ++i)
    if (skip[i]) release_floats(buf_.data() + ps[i].offset, ps[i].numel);
}

void ComputeWeights::set_per_range() {
  MOE_CHECK(prec_ != Precision::fp32, "ComputeWeights: no copy to refresh per range under fp32");
  per_range_ = true;
  release_floats(buf_.data(), int64_t(buf_.size()));
}

void ComputeWeights::refresh_range(const ModelState& model, int64_t begin, int64_t end) {
  MOE_CHECK(per_range_ && begin >= 0 && begin <= end && end <= int64_t(buf_.size()), "ComputeWeights: bad range");
  const auto& ps = model.table.params();
  for (size_t i = 0; i < ps.size(); ++i) {  // rounding is elementwise: any slice of a tensor rounds alike
    const int64_t lo = std::max(begin, ps[i].offset), hi = std::min(end, ps[i].offset + ps[i].numel);
    if (lo >= hi) continue;
    const float* src = model.params.data() + lo;
    float* dst = buf_.data() + lo;
    if (rounded_[i]) half::round_to(dst, src, hi - lo, prec_);
    else std::copy(src, src + (hi - lo), dst);
  }
}

void ComputeWeights::release_range(int64_t begin, int64_t end) {
  MOE_CHECK(per_range_ && begin >= 0 && begin <= end && end <= int64_t(buf_.size()), "ComputeWeights: bad range");
  release_floats(buf_.data() + begin, end - begin);
}

void ComputeWeights::sample_resident() {
  peak_resident_ = std::max(peak_resident_, resident_bytes(buf_.data(), int64_t(buf_.size())));
}

void add_precision_metrics(nlohmann::json& rec, ComputeWeights& w, const LossScaler& s) {
  if (w.precision() != Precision::fp32) {
    const int64_t bytes = w.per_range() ? w.peak_resident_bytes() : w.bytes();
    rec["mem_compute_weights"] = bytes;
    rec["mem_bytes"] = rec.value("mem_bytes", int64_t(0)) + bytes;
    w.reset_peak();
  }
  if (s.enabled()) {
    rec["loss_scale"] = s.scale();
    rec["skipped_steps"] = s.skipped_steps();
  }
}

}  // namespace moe
