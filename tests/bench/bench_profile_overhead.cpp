// Cost of load-balance profiling at profile.every = 1 against a training step of a config
// (default configs/tiny.yaml; random tokens, one process): the phase scopes of a step plus
// LoadBalanceHook::record (the recorder's row, its periodic HDF5 append and flush).
// Usage: bench_profile_overhead [CONFIG] [STEPS]   (run from the repository root)
// Prints the median step time without profiling, the measured cost of the profiling work per
// step, and the overhead in percent; also the end-to-end difference of interleaved steps with
// profiling on and off (noisier: it includes the machine's load).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "src/comm/communicator.h"
#include "src/model/transformer.h"
#include "src/train/config.h"
#include "src/train/load_balance_hook.h"
#include "src/train/model_state.h"
#include "src/train/optimizer.h"
#include "src/train/routing_update.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Step {
  const moe::Config& c;
  moe::ModelState model;
  moe::AdamW optim;
  moe::Transformer net;
  std::vector<int32_t> tokens;
  int64_t n = 0;

  explicit Step(const moe::Config& cfg)
      : c(cfg), model(cfg), optim(model.table, cfg.optim), net(cfg, cfg.train.batch_size),
        tokens(size_t(cfg.train.batch_size * (cfg.model.seq_len + 1))) {
    moe::init_params(model.table, model.params.data(), cfg.train.seed);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 2654435761u) % uint64_t(cfg.model.vocab_size));
  }
  void run() {
    std::fill(model.grads.begin(), model.grads.end(), 0.0f);
    net.set_routing_step(n++, 0, true);
    net.forward(tokens.data(), model.p, {});
    net.backward(model.p, model.g, double(c.train.batch_size * c.model.seq_len));
    moe::PhaseScope timed(moe::Phase::optimizer);
    optim.step(model.params.data(), model.grads.data(), 1e-4, 1.0);
    moe::update_balancing_bias(c, net, model);
  }
};

int run(const moe::Config& c, const std::string& config, int steps, const fs::path& dir,
        moe::comm::Communicator& world);

}  // namespace

int main(int argc, char** argv) {
  moe::comm::Runtime rt(&argc, &argv);
  const std::string config = argc > 1 ? argv[1] : "configs/tiny.yaml";
  const int steps = argc > 2 ? std::stoi(argv[2]) : 200;
  moe::Config c = moe::load_config(config, {});
  c.profile.load_balance = true;
  c.profile.every = 1;
  const fs::path dir = fs::temp_directory_path() / ("moe_bench_profile_" + std::to_string(::getpid()));
  fs::create_directories(dir);

  const int rc = run(c, config, steps, dir, *rt.world());
  fs::remove_all(dir);
  return rc;
}

namespace {
int run(const moe::Config& c, const std::string& config, int steps, const fs::path& dir,
        moe::comm::Communicator& world) {
  Step s(c);
  moe::LoadBalanceHook hook(c, dir.string(), /*lead=*/true, 0);
  moe::PhaseTimer& timer = s.net.phase_timer();
  for (int i = 0; i < 5; ++i) s.run();  // warm-up

  // Interleaved, the order swapped every step, so load changes hit both alike.
  std::vector<double> off, on, work;
  auto plain = [&] {
    const auto t0 = Clock::now();
    s.run();
    off.push_back(seconds_since(t0));
  };
  auto profiled = [&] {
    const auto t0 = Clock::now();
    const moe::ActivePhaseTimer active(&timer);
    timer.reset();
    s.run();
    const auto t_rec = Clock::now();
    hook.record(s.n, s.net, s.model, seconds_since(t0), world);
    work.push_back(seconds_since(t_rec));  // the mean spreads the flush every 64 rows
    on.push_back(seconds_since(t0));
  };
  for (int i = 0; i < steps; ++i) {
    if (i % 2) {
      plain();
      profiled();
    } else {
      profiled();
      plain();
    }
  }
  // The scopes' own cost: one enter/leave pair, times the pairs a step opens.
  moe::PhaseTimer probe;
  probe.set_tracing(false);
  const int pairs = 1000000;
  auto t0 = Clock::now();
  {
    const moe::ActivePhaseTimer active(&probe);
    for (int i = 0; i < pairs; ++i) moe::PhaseScope sc(moe::Phase::route);
  }
  const double per_scope = seconds_since(t0) / pairs;
  timer.set_tracing(true);
  {
    const moe::ActivePhaseTimer active(&timer);
    timer.reset();
    s.run();
  }
  const size_t scopes = timer.spans().size();
  timer.set_tracing(false);

  const double step_off = median(off), record = mean(work), scope_cost = double(scopes) * per_scope;
  const double overhead = (record + scope_cost) / step_off;
  std::printf("config %s, %d steps (profile.every = 1), rows written %lld\n", config.c_str(), steps,
              (long long)steps);
  std::printf("step without profiling (median)     %10.3f ms\n", step_off * 1e3);
  std::printf("hook record per step (mean)         %10.3f us\n", record * 1e6);
  std::printf("phase scopes per step               %10zu x %.1f ns = %.3f us\n", scopes, per_scope * 1e9,
              scope_cost * 1e6);
  std::printf("profiling overhead                  %10.3f %%  (limit 3%%)\n", 100.0 * overhead);
  std::printf("end to end: step with profiling     %10.3f ms (median; %+.2f %% vs without, load included)\n",
              median(on) * 1e3, 100.0 * (median(on) - step_off) / step_off);
  return overhead < 0.03 ? 0 : 1;
}
}  // namespace
