// A hardware profile for the planner (configs/hardware/*.yaml, docs/planning.md): one accelerator
// (or CPU rank) and the links between them. Throughputs in FLOP/s and bytes/s, latencies in s.
#pragma once
#include <cstdint>
#include <string>

namespace moe::plan {

// One level of interconnect, for the alpha-beta model: time(bytes) = latency + bytes / bandwidth.
struct Link {
  double bandwidth = 0;  // bytes/s per rank, one direction
  double latency = 0;    // s per message
};

struct Hardware {
  std::string name;
  std::string source;              // file it came from (messages)
  int64_t devices_per_node = 1;    // ranks sharing the intra-node link
  double matmul_flops = 0;         // dense bf16/fp16 GEMM peak per device
  double fp32_matmul_flops = 0;    // dense fp32 GEMM peak per device (train.precision: fp32)
  double matmul_efficiency = 1.0;  // fraction of the peak large GEMMs reach (1 when measured)
  double memory_bytes = 0;         // device memory capacity per rank
  double memory_bandwidth = 0;     // bytes/s per device
  Link intra_node;                 // NVLink (GPU) / shared memory (CPU)
  Link inter_node;                 // InfiniBand per device (GPU) / same as intra on one machine
  bool stores_attention_scores = false;  // false: fused (flash) attention keeps only the row lse
  // Measured per-op-class figures (CPU profiles; GPU profiles leave them out):
  double attention_flops = 0;      // attention kernel FLOP/s per device (0: the GEMM rate)
  double op_overhead = 0;          // s per kernel call (dispatch, threading, small-op floor)
  double sync_overhead = 0;        // s per collective call beyond alpha-beta (0: none)
  // CPU ranks share a machine's cores: 0 for accelerators, which do not share. A CPU profile's
  // rates are those of one thread on a core of its own; ranks x threads (+ background_load,
  // other processes' runnable threads) above `cores` slow every rank proportionally.
  int64_t cores = 0;
  double thread_efficiency = 1.0;  // speed-up of t threads in one rank = 1 + (t - 1) x this
  double background_load = 0;
  // Linux autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled): the cores are shared
  // fairly between sessions, not threads, so all ranks of one mpirun (one session) share one
  // session's part, and background_load counts other sessions per core instead of threads.
  bool autogroup = false;
  double peak_flops(const std::string& precision) const {
    return precision == "fp32" ? fp32_matmul_flops : matmul_flops;
  }
};

// CPU profiles: the fraction of a core each runnable thread gets when `ranks` ranks of `threads`
// threads share the machine with background_load others (1 for profiles without `cores`):
// threads share fairly, cores / (ranks x threads + background_load); under autogroup the run's
// session gets min(ranks x threads, cores) / (1 + background_load) cores, split among its threads.
double core_share(const Hardware& hw, int64_t ranks, int64_t threads);
// How fast one rank computes relative to one thread alone on a core:
// (1 + (threads - 1) x thread_efficiency x share) x share.
double rank_speed(const Hardware& hw, int64_t ranks, int64_t threads);
// Threads per rank the trainer picks when MOE_THREADS is unset: cores / ranks, at least 1.
int64_t default_threads(const Hardware& hw, int64_t ranks);

// Reads a profile; ConfigError naming the file and key on a missing, unknown or invalid key.
Hardware load_hardware(const std::string& file);
Hardware parse_hardware(const std::string& yaml_text, const std::string& source);
// The profile as YAML that parse_hardware reads back; `comment` goes on top as # lines.
std::string dump_hardware(const Hardware& hw, const std::string& comment);

}  // namespace moe::plan
