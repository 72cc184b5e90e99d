#include "src/train/profile_trace.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"
#include "src/train/profile_schema.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

constexpr int kComputeLane = 0, kCommLane = 1;
static_assert(profile::kPhaseNames.size() == size_t(kNumPhases) + 1, "phase names follow enum Phase, then step");

double micros(PhaseTrace::Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(t.time_since_epoch()).count();
}

// steady_clock is CLOCK_MONOTONIC: one time base for every rank of a node, so the ranks line up.
std::string complete_event(const char* name, const char* cat, int pid, int tid, PhaseTrace::Clock::time_point b,
                           PhaseTrace::Clock::time_point e, int64_t step) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d,"
                "\"args\":{\"step\":%lld}}",
                name, cat, micros(b), micros(e) - micros(b), pid, tid, (long long)step);
  return buf;
}

std::string metadata_event(const char* what, int pid, int tid, const std::string& name) {
  return "{\"name\":\"" + std::string(what) + "\",\"ph\":\"M\",\"pid\":" + std::to_string(pid) +
         ",\"tid\":" + std::to_string(tid) + ",\"args\":{\"name\":\"" + name + "\"}}";
}

}  // namespace

std::string PhaseTrace::rank_path(const std::string& base, int rank) {
  const std::string tag = ".rank" + std::to_string(rank) + ".json";
  const std::string ext = ".json";
  if (base.size() > ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0)
    return base.substr(0, base.size() - ext.size()) + tag;
  return base + tag;
}

PhaseTrace::PhaseTrace(const Config& c, const std::string& run_dir, int rank)
    : rank_(rank), first_(c.profile.trace_first), last_(c.profile.trace_last) {
  if (c.profile.trace.empty()) return;
  fs::path base(c.profile.trace);
  if (base.is_relative()) base = fs::path(run_dir) / base;
  path_ = rank_path(base.string(), rank);
  events_ = metadata_event("process_name", rank, 0, "rank " + std::to_string(rank)) + "," +
            metadata_event("thread_name", rank, kComputeLane, "compute") + "," +
            metadata_event("thread_name", rank, kCommLane, "communication");
}

PhaseTrace::~PhaseTrace() {
  if (!enabled() || written_) return;
  try {
    write();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: warning: %s\n", e.what());
  }
}

void PhaseTrace::add_step(int64_t step, Clock::time_point begin, Clock::time_point end,
                          const std::vector<PhaseSpan>& spans) {
  if (!wants(step)) return;
  events_ += ',';
  events_ += complete_event("step", "step", rank_, kComputeLane, begin, end, step);
  for (const PhaseSpan& s : spans) {
    const bool comm = s.phase == Phase::comm_wait;
    events_ += ',';
    events_ += complete_event(profile::kPhaseNames[size_t(s.phase)], comm ? "communication" : "compute", rank_,
                              comm ? kCommLane : kComputeLane, s.begin, s.end, step);
  }
  if (step == last_) write();
}

void PhaseTrace::write() {
  written_ = true;
  const fs::path p(path_);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  std::ofstream out(path_, std::ios::binary | std::ios::trunc);
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[" << events_ << "]}\n";
  out.close();
  if (!out) throw DataError(path_ + ": cannot write the phase trace (profile.trace); check the folder is writable");
  events_.clear();
}

}  // namespace moe
