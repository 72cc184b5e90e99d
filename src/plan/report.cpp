#include "src/core/strformat.h"
#include "src/plan/report.h"

#include <algorithm>
#include <cstdio>

#include "src/plan/param_count.h"

namespace moe::plan {
namespace {

constexpr double kGiB = 1073741824.0;

nlohmann::json layout_json(const Layout& l) {
  return {{"dp", l.dp},
          {"tp", l.tp},
          {"pp", l.pp},
          {"ep", l.ep},
          {"etp", l.etp},
          {"zero_stage", l.zero_stage},
          {"microbatches", l.microbatches},
          {"recompute", l.recompute}};
}

nlohmann::json memory_json(const MemoryBreakdown& m) {
  return {{"stage", m.stage},     {"params", m.params},           {"grads", m.grads},
          {"optimizer", m.optimizer}, {"activations", m.activations}, {"a2a_buffers", m.a2a_buffers},
          {"staging", m.staging},   {"total", m.total()}};
}

nlohmann::json time_json(const StepBreakdown& t) {
  return {{"stage", t.stage},     {"compute", t.compute}, {"recompute", t.recompute}, {"imbalance", t.imbalance},
          {"tp_comm", t.tp_comm}, {"ep_comm", t.ep_comm}, {"pp_comm", t.pp_comm},     {"bubble", t.bubble},
          {"dp_comm", t.dp_comm}, {"optimizer", t.optimizer}, {"total", t.total()}};
}

std::string header(const PlanInputs& in, const PlanResult& r) {
  const Config& c = in.config;
  const Hardware& hw = in.hardware;
  const ParamCounts pc = count_params(c);
  std::string s = strformat("moe plan: %s on %lld ranks of %s (%.1f GiB, %.1f TFLOP/s %s x %.2f, %lld per node)\n",
                      c.source.c_str(), (long long)r.world, hw.name.c_str(), hw.memory_bytes / kGiB,
                      hw.peak_flops(c.train.precision) / 1e12, c.train.precision.c_str(), hw.matmul_efficiency,
                      (long long)hw.devices_per_node);
  const bool billions = pc.total() >= 1000000000;
  const double scale = billions ? 1e9 : 1e6;
  const char* unit = billions ? "B" : "M";
  s += strformat("model: %.2f%s parameters, %.2f%s active; batch %lld x %lld tokens; expert imbalance %.2f (max/mean)\n",
           double(pc.total()) / scale, unit, double(pc.active(c.moe.top_k, c.moe.num_experts)) / scale, unit,
           (long long)c.train.batch_size, (long long)c.model.seq_len, in.imbalance);
  if (hw.cores > 0) {
    const int64_t t = in.threads > 0 ? in.threads : default_threads(hw, r.world);
    s += strformat("cpu: %lld ranks x %lld threads on %lld cores (+%.1f background): each thread gets %.2f of a core\n",
             (long long)r.world, (long long)t, (long long)hw.cores, hw.background_load,
             core_share(hw, r.world, t));
  }
  return s;
}

}  // namespace

nlohmann::json estimate_json(const LayoutEstimate& e) {
  nlohmann::json j = {{"layout", layout_json(e.layout)},
                      {"name", describe(e.layout)},
                      {"memory_bytes", memory_json(e.memory)},
                      {"step_s", time_json(e.time)},
                      {"tokens_per_s", e.tokens_per_s},
                      {"mfu", e.mfu},
                      {"fits", e.fits}};
  if (!e.fits) j["reason"] = e.reason;
  return j;
}

nlohmann::json plan_json(const PlanInputs& in, const PlanResult& r, int64_t top) {
  const ParamCounts pc = count_params(in.config);
  nlohmann::json j = {{"config", in.config.source},
                      {"hardware", in.hardware.name},
                      {"world", r.world},
                      {"memory_capacity_bytes", in.hardware.memory_bytes},
                      {"total_params", pc.total()},
                      {"active_params", pc.active(in.config.moe.top_k, in.config.moe.num_experts)},
                      {"imbalance", in.imbalance},
                      {"threads_per_rank", in.threads > 0 ? in.threads : default_threads(in.hardware, r.world)},
                      {"considered", r.considered},
                      {"fitting_count", int64_t(r.fitting.size())},
                      {"fitting", nlohmann::json::array()},
                      {"not_fitting", nlohmann::json::array()}};
  if (r.has_configured) j["configured"] = estimate_json(r.configured);
  for (size_t i = 0; i < r.fitting.size() && int64_t(i) < top; ++i) j["fitting"].push_back(estimate_json(r.fitting[i]));
  for (size_t i = 0; i < r.not_fitting.size() && int64_t(i) < top; ++i)
    j["not_fitting"].push_back(estimate_json(r.not_fitting[i]));
  return j;
}

std::string plan_table(const PlanInputs& in, const PlanResult& r, int64_t top) {
  std::string s = header(in, r);
  // GiB for real models, MiB for the small ones this machine trains.
  double biggest = 0;
  for (size_t i = 0; i < r.fitting.size() && int64_t(i) < top; ++i)
    biggest = std::max(biggest, r.fitting[i].memory.total());
  if (r.has_configured) biggest = std::max(biggest, r.configured.memory.total());
  const double unit_bytes = biggest >= 1073741824.0 ? 1073741824.0 : 1048576.0;
  const char* mem_unit = biggest >= 1073741824.0 ? "mem GiB" : "mem MiB";
  s += strformat("%lld layouts considered, %zu fit in memory", (long long)r.considered, r.fitting.size());
  if (r.fitting.empty()) {
    s += ".\n";
  } else {
    s += strformat("; the fastest %lld:\n\n", (long long)std::min<int64_t>(top, int64_t(r.fitting.size())));
    s += strformat("%3s  %-38s %7s = %6s %6s %6s %6s %6s | %8s = %8s %8s %8s %8s %8s %8s %8s %8s | %10s %6s\n", "#",
             "layout", mem_unit, "wts", "grad", "opt", "act", "comm", "step s", "compute", "recomp", "imbal", "tp",
             "ep", "pp+bub", "dp", "optim", "tokens/s", "MFU");
    for (size_t i = 0; i < r.fitting.size() && int64_t(i) < top; ++i) {
      const LayoutEstimate& e = r.fitting[i];
      const MemoryBreakdown& m = e.memory;
      const StepBreakdown& t = e.time;
      s += strformat("%3zu  %-38s %7.2f = %6.2f %6.2f %6.2f %6.2f %6.2f | %8.4g = %8.3g %8.3g %8.3g %8.3g %8.3g %8.3g %8.3g "
               "%8.3g | %10.4g %5.1f%%\n",
               i + 1, describe(e.layout).c_str(), m.total() / unit_bytes, m.params / unit_bytes, m.grads / unit_bytes,
               m.optimizer / unit_bytes, m.activations / unit_bytes, (m.a2a_buffers + m.staging) / unit_bytes, t.total(), t.compute, t.recompute,
               t.imbalance, t.tp_comm, t.ep_comm, t.pp_comm + t.bubble, t.dp_comm, t.optimizer, e.tokens_per_s,
               100.0 * e.mfu);
    }
  }
  if (r.has_configured) {
    const LayoutEstimate& e = r.configured;
    s += strformat("\nthe config's layout %s: %.2f %s per rank (%s), step %.4g s, %.4g tokens/s, MFU %.1f%%\n",
             describe(e.layout).c_str(), e.memory.total() / unit_bytes, mem_unit + 4, e.fits ? "fits" : e.reason.c_str(), e.time.total(),
             e.tokens_per_s, 100.0 * e.mfu);
  }
  if (!r.not_fitting.empty()) {
    s += strformat("\n%zu layouts do not fit; the closest %lld:\n", r.not_fitting.size(),
             (long long)std::min<int64_t>(top, int64_t(r.not_fitting.size())));
    for (size_t i = 0; i < r.not_fitting.size() && int64_t(i) < top; ++i)
      s += strformat("     %-38s %s\n", describe(r.not_fitting[i].layout).c_str(), r.not_fitting[i].reason.c_str());
  }
  return s;
}

}  // namespace moe::plan
