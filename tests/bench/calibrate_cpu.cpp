// Measures this machine for `moe plan` and writes a hardware profile (docs/planner.md):
//   mpirun --oversubscribe -np 2 build/tests/calibrate_cpu configs/hardware/cpu_local.yaml
// Each rank is one "device" running one thread: sgemm throughput and memory bandwidth are
// measured on all ranks at once (as in training), and point-to-point latency and bandwidth
// between ranks 0 and 1 by ping-pong (a broadcast between two ranks is one message).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "src/comm/communicator.h"
#include "src/plan/hardware.h"
#include "src/train/flops.h"
#include "src/train/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of `reps` STREAM-triad passes (a = b + s c), counting 2 reads and 1 write per element.
double triad_bandwidth(int64_t n, int reps) {
  std::vector<float> a(size_t(n), 0.0f), b(size_t(n), 1.0f), c(size_t(n), 2.0f);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) a[size_t(i)] = b[size_t(i)] + 0.5f * c[size_t(i)];
    const double s = seconds_since(t0);
    best = std::max(best, 3.0 * double(n) * sizeof(float) / s);
    b[size_t(r)] = a[size_t(n - 1 - r)];  // keep the loop from being optimised away
  }
  return best;
}

// One-way time of a message of `bytes` between ranks 0 and 1: best of ping-pong round trips / 2.
double one_way_seconds(moe::comm::Communicator& w, int64_t bytes, int reps) {
  std::vector<char> buf(size_t(std::max<int64_t>(bytes, 1)));
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {
    w.barrier();
    auto t0 = Clock::now();
    w.broadcast(buf.data(), bytes, 0);
    w.broadcast(buf.data(), bytes, 1);
    if (r > 0) best = std::min(best, seconds_since(t0) / 2);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  moe::comm::Runtime rt(&argc, &argv);
  auto world = rt.world();
  if (world->size() != 2 || argc != 2) {
    if (world->rank() == 0)
      std::fprintf(stderr, "usage: mpirun --oversubscribe -np 2 calibrate_cpu OUT.yaml\n");
    return 2;
  }
  moe::set_threads(1);
  world->barrier();
  const double sgemm = moe::measure_sgemm_peak(1024, 5);
  world->barrier();
  const double mem_bw = triad_bandwidth(int64_t(1) << 24, 5);
  // Latency from 8-byte messages; bandwidth from 64 MiB ones after subtracting the latency.
  const double latency = one_way_seconds(*world, 8, 200);
  const int64_t big = int64_t(64) << 20;
  const double p2p_bw = double(big) / (one_way_seconds(*world, big, 5) - latency);

  std::vector<double> figures = {sgemm, mem_bw};
  world->allreduce_sum(figures.data(), int64_t(figures.size()));  // report the mean over ranks
  if (world->rank() != 0) return 0;
  double mem_total_kib = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    if (key == "MemTotal:") {
      meminfo >> mem_total_kib;
      break;
    }
  }
  moe::plan::Hardware h;
  h.name = "cpu_local";
  h.devices_per_node = 2;
  h.matmul_flops = figures[0] / 2;  // no bf16 GEMMs on the CPU path: the fp32 figure
  h.fp32_matmul_flops = figures[0] / 2;
  h.matmul_efficiency = 1.0;        // measured, not a datasheet peak
  h.memory_bytes = mem_total_kib * 1024.0 / 2;
  h.memory_bandwidth = figures[1] / 2;
  h.intra_node = {p2p_bw, latency};
  h.inter_node = h.intra_node;      // one machine: more ranks still talk through shared memory
  h.stores_attention_scores = true; // the CPU attention kernel keeps the (B, H, T, T) scores
  const std::string comment =
      "This machine, measured by scripts/calibrate_cpu.sh (tests/bench/calibrate_cpu.cpp) with 2 MPI\n"
      "ranks of one thread each: cblas_sgemm 1024^3 (best of 5, both ranks at once), STREAM triad,\n"
      "MPI ping-pong (8 B latency, 64 MiB bandwidth). memory_gib is MemTotal / 2 ranks.";
  std::ofstream out(argv[1]);
  out << moe::plan::dump_hardware(h, comment);
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", argv[1]);
    return 3;
  }
  std::printf("%s", moe::plan::dump_hardware(h, comment).c_str());
  return 0;
}
