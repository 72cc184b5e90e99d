// Measures this machine for `moe plan` and writes the cpu_local hardware profile
// (docs/planning.md, "Calibration"). Two phases, run by scripts/calibrate_cpu.sh:
//   calibrate_cpu compute CONFIG.yaml > compute.yaml            one process: kernel rates
//   mpirun --oversubscribe -np 2 calibrate_cpu comm compute.yaml OUT.yaml   links, then the profile
// The compute phase times the real kernels of kernels/ops.h at the config's shapes (one thread,
// then `cores` threads) and a whole tiny forward + backward for the per-call overhead. Kernels are
// timed in CPU time, so rates are per core whatever else runs; the ratio of CPU to wall time gives
// the share of a core the machine left us, hence its background load, which the planner re-applies.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/ops.h"
#include "src/comm/communicator.h"
#include "src/model/transformer.h"
#include "src/plan/hardware.h"
#include "src/plan/step_time.h"
#include "src/train/model_state.h"
#include "src/train/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Wall and CPU time (all threads of the process) spent in the timed runs so far: their ratio is
// the cores the measuring threads actually got, whatever else the machine was running.
struct Usage {
  double wall = 0, cpu = 0;
};
Usage g_usage;

// Best CPU time of `reps` runs of f (after one warm-up run): the work's cost on cores we had.
double best_time(int reps, const std::function<void()>& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    f();
    const double cpu = cpu_seconds() - c0;
    g_usage.wall += seconds_since(t0);
    g_usage.cpu += cpu;
    best = std::min(best, cpu);
  }
  return best;
}

std::vector<float> filled(int64_t n, float v) { return std::vector<float>(size_t(n), v); }

// The GEMMs of one layer at the config's shapes (attention projections, router, experts, head),
// forward and backward; FLOP/s over their sum.
double gemm_rate(const moe::Dims& d) {
  const int64_t N = d.N, D = d.D, qd = d.H * d.hd, kvd = d.KV * d.hd, rows = N * d.K;
  const int64_t big = std::max({qd, d.Fe, d.V, D});
  std::vector<float> x = filled(N * big, 0.01f), y = filled(rows * big, 0.0f), dx = y;
  std::vector<float> w = filled(std::max(d.E * d.Fe * D, big * big), 0.02f), dw = w, xe = filled(rows * big, 0.01f);
  std::vector<int64_t> off(size_t(d.E + 1));
  for (int64_t e = 0; e <= d.E; ++e) off[size_t(e)] = rows * e / d.E;
  double flops = 0;
  auto dense = [&](int64_t I, int64_t O) {
    moe::ops::matmul_forward(y.data(), x.data(), w.data(), N, I, O);
    moe::ops::matmul_backward(dx.data(), dw.data(), y.data(), x.data(), w.data(), N, I, O);
  };
  const double t = best_time(3, [&] {
    dense(D, qd);
    dense(D, kvd);
    dense(D, kvd);
    dense(qd, D);
    dense(D, d.E);
    dense(D, d.V);
    for (auto [I, O] : {std::pair{D, d.Fe}, std::pair{D, d.Fe}, std::pair{d.Fe, D}}) {
      moe::ops::grouped_matmul_forward(y.data(), xe.data(), w.data(), off.data(), d.E, I, O);
      moe::ops::grouped_matmul_backward(dx.data(), dw.data(), y.data(), xe.data(), w.data(), off.data(), d.E, I, O);
    }
  });
  flops = 6.0 * double(N) * double(D * qd * 2 + D * kvd * 2 + D * d.E + D * d.V) + 6.0 * double(rows) * 3.0 * double(D * d.Fe);
  return flops / t;
}

// Attention forward + backward, in the planner's convention: 3 x 2 T H hd FLOPs per token.
double attention_rate(const moe::Dims& d) {
  const int64_t N = d.N, qd = d.H * d.hd, kvd = d.KV * d.hd;
  std::vector<float> q = filled(N * qd, 0.1f), k = filled(N * kvd, 0.1f), v = k, out = q, dq = q, dk = k, dv = k;
  std::vector<float> att = filled(d.B * d.H * d.T * d.T, 0.0f);
  const double t = best_time(3, [&] {
    moe::ops::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), d.B, d.T, d.H, d.KV, d.hd);
    moe::ops::attention_backward(dq.data(), dk.data(), dv.data(), out.data(), att.data(), q.data(), k.data(),
                                 v.data(), d.B, d.T, d.H, d.KV, d.hd);
  });
  return 3.0 * double(N) * 2.0 * double(d.T * d.H * d.hd) / t;
}

// SwiGLU and RMSNorm forward + backward over the expert rows: bytes they move per second.
double elementwise_bandwidth(const moe::Dims& d) {
  const int64_t n = d.N * d.K * d.Fe, nd = d.N * d.D;
  std::vector<float> a = filled(n, 0.1f), b = a, o = a, da = a, db = a;
  std::vector<float> x = filled(nd, 0.1f), xo = x, dxo = x, wn = filled(d.D, 1.0f), dwn = wn, rstd = filled(d.N, 1.0f);
  const double t = best_time(3, [&] {
    moe::ops::swiglu_forward(o.data(), a.data(), b.data(), n);
    moe::ops::swiglu_backward(da.data(), db.data(), o.data(), a.data(), b.data(), n);
    moe::ops::rmsnorm_forward(xo.data(), rstd.data(), x.data(), wn.data(), d.N, d.D, 1e-5f);
    moe::ops::rmsnorm_backward(dxo.data(), dwn.data(), xo.data(), x.data(), wn.data(), rstd.data(), d.N, d.D);
  });
  // swiglu: 3n forward, 7n backward (da, db read and written); rmsnorm: 2nd forward, 4nd backward.
  return (10.0 * double(n) + 6.0 * double(nd)) * sizeof(float) / t;
}

// Seconds per kernel call: a whole forward + backward of a model too small to do any work.
double op_overhead() {
  moe::Config c;
  c.model.vocab_size = 16;
  c.model.d_model = 8;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.seq_len = 4;
  c.model.ffn_hidden = 8;
  c.model.moe_every = 1;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 8;
  c.train.batch_size = 1;
  moe::ModelState m(c);
  moe::init_params(m.table, m.params.data(), 1);
  moe::Transformer net(c, 1);
  std::vector<int32_t> tokens(size_t(c.model.seq_len + 1), 3);
  const double t = best_time(50, [&] {
    net.forward(tokens.data(), m.p, {});
    net.backward(m.p, m.g, double(c.model.seq_len));
  });
  return t / moe::plan::kernel_calls(c, 0);
}

// Linux shares the cores between sessions rather than threads when autogroup is on.
bool autogroup_enabled() {
  std::ifstream f("/proc/sys/kernel/sched_autogroup_enabled");
  int on = 0;
  return (f >> on) && on == 1;
}

int compute_phase(const std::string& config_file) {
  moe::Config c = moe::load_config(config_file, {});
  const int64_t cores = std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()));
  // Two ranks' share of the global batch: the rows a rank of a small layout sees.
  const moe::Dims d = moe::make_dims(c, std::max<int64_t>(1, c.train.batch_size / 2));
  // One thread: rates per second of CPU time are rates per core, whatever the load.
  moe::set_threads(1);
  g_usage = {};
  const double gemm = gemm_rate(d), attention = attention_rate(d), bandwidth = elementwise_bandwidth(d);
  const double overhead = op_overhead();
  const double share1 = std::min(1.0, g_usage.cpu / g_usage.wall);
  // All cores in one rank: CPU time per unit of work grows with threading overheads.
  moe::set_threads(int(cores));
  g_usage = {};
  const double gemm_many = gemm_rate(d);
  const double share_many = std::min(1.0, g_usage.cpu / (g_usage.wall * double(cores)));
  moe::set_threads(1);
  // t threads do t x (gemm_many / gemm) of one thread's work per CPU second; the planner's form
  // is 1 + (t - 1) x efficiency.
  const double t = double(cores);
  const double efficiency = cores > 1 ? std::clamp((t * gemm_many / gemm - 1.0) / (t - 1.0), 0.05, 1.0) : 1.0;
  // A thread that got a fraction `share` of a core competed with cores / share - 1 others; under
  // autogroup scheduling this process's session competed with 1 / share - 1 others per core.
  const bool autogroup = autogroup_enabled();
  const double bg1 = std::max(0.0, autogroup ? 1.0 / share1 - 1.0 : double(cores) / share1 - 1.0);
  const double bg_many = std::max(0.0, autogroup ? 1.0 / share_many - 1.0 : double(cores) / share_many - t);
  std::printf("# compute phase: %s shapes, %lld rows; core share %.2f (1 thread), %.2f (%lld threads)\n",
              config_file.c_str(), (long long)d.N, share1, share_many, (long long)cores);
  std::printf("matmul_flops: %.6g\nattention_flops: %.6g\nmemory_bandwidth: %.6g\nop_overhead: %.6g\n", gemm,
              attention, bandwidth, overhead);
  std::printf("cores: %lld\nthread_efficiency: %.4g\nbackground_load: %.3g\nautogroup: %s\n", (long long)cores,
              efficiency, (bg1 + bg_many) / 2, autogroup ? "true" : "false");
  return 0;
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

// What a small all-reduce between bursts of compute costs beyond the compute (both ranks
// working, as in training): the wait for the other rank to be scheduled and finish. The bursts
// (four 512^3 GEMMs, ~10 ms on one core) are as long as the compute between the trainer's
// blocking collectives, so a loaded machine preempts ranks between them as it does in training;
// bursts much shorter than a scheduler slice rarely see that and underestimate the wait.
double sync_overhead(moe::comm::Communicator& w) {
  const int64_t k = 512;
  std::vector<float> a = filled(size_t(k * k), 0.01f), out = a;
  auto burst = [&] {
    for (int i = 0; i < 4; ++i) moe::ops::matmul_forward(out.data(), a.data(), a.data(), k, k, k);
  };
  // Rounds of (bursts alone, bursts with a sync after each) back to back, so a change of the
  // machine's load between the two halves moves one round, not the median.
  const int n = 5, rounds = 7;
  double x = 0;
  std::vector<double> extras;
  for (int r = 0; r < rounds; ++r) {
    w.barrier();
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) burst();
    const double alone = seconds_since(t0);
    w.barrier();
    t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      burst();
      w.allreduce_sum(&x, 1);
    }
    extras.push_back((seconds_since(t0) - alone) / n);
  }
  std::sort(extras.begin(), extras.end());
  double extra = std::max(0.0, extras[extras.size() / 2]);
  w.allreduce_max(&extra, 1);
  return extra;
}

int comm_phase(moe::comm::Communicator& world, const std::string& compute_file, const std::string& out_file) {
  moe::set_threads(1);
  const double latency = one_way_seconds(world, 8, 200);
  const int64_t big = int64_t(64) << 20;
  const double p2p_bw = double(big) / (one_way_seconds(world, big, 5) - latency);
  const double sync = sync_overhead(world);
  if (world.rank() != 0) return 0;
  const YAML::Node part = YAML::LoadFile(compute_file);
  double mem_total_kib = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;)
    if (key == "MemTotal:") {
      meminfo >> mem_total_kib;
      break;
    }
  moe::plan::Hardware h;
  h.name = "cpu_local";
  h.cores = part["cores"].as<int64_t>();
  h.devices_per_node = h.cores;
  h.matmul_flops = part["matmul_flops"].as<double>();  // no bf16 GEMMs on the CPU path
  h.fp32_matmul_flops = h.matmul_flops;
  h.matmul_efficiency = 1.0;  // measured at the real shapes, not a datasheet peak
  h.attention_flops = part["attention_flops"].as<double>();
  h.memory_bandwidth = part["memory_bandwidth"].as<double>();
  h.op_overhead = part["op_overhead"].as<double>();
  h.thread_efficiency = part["thread_efficiency"].as<double>();
  h.background_load = part["background_load"].as<double>();
  h.autogroup = part["autogroup"].as<bool>();
  // Measured on 2 ranks at the calibration's load; the planner divides by each layout's share.
  h.sync_overhead = sync * moe::plan::core_share(h, 2, 1);
  h.memory_bytes = mem_total_kib * 1024.0 / double(h.cores);
  h.intra_node = {p2p_bw, latency};
  h.inter_node = h.intra_node;       // one machine: every rank talks through shared memory
  h.stores_attention_scores = true;  // the CPU attention kernel keeps the (B, H, T, T) scores
  const std::string comment =
      "This machine, measured by scripts/calibrate_cpu.sh (tests/bench/calibrate_cpu.cpp,\n"
      "docs/planning.md): the kernels of kernels/ops.h at the config's shapes, one thread, rates\n"
      "per core in CPU time, the load from CPU / wall time; a tiny forward+backward per kernel\n"
      "call; MPI ping-pong (8 B latency, 64 MiB bandwidth) and an all-reduce between compute bursts\n"
      "on 2 ranks. memory_gib is MemTotal / cores.";
  std::ofstream out(out_file);
  out << moe::plan::dump_hardware(h, comment);
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", out_file.c_str());
    return 3;
  }
  std::printf("%s", moe::plan::dump_hardware(h, comment).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "compute" && argc == 3) return compute_phase(argv[2]);
  if (mode == "comm" && argc == 4) {
    moe::comm::Runtime rt(&argc, &argv);
    auto world = rt.world();
    if (world->size() == 2) return comm_phase(*world, argv[2], argv[3]);
  }
  std::fprintf(stderr,
               "usage: calibrate_cpu compute CONFIG.yaml > COMPUTE.yaml\n"
               "       mpirun --oversubscribe -np 2 calibrate_cpu comm COMPUTE.yaml OUT.yaml\n");
  return 2;
}
