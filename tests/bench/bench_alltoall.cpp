// Expert-parallel dispatch + combine throughput against raw MPI_Alltoallv on the same byte
// counts, as an nccl-tests style table. Run under mpirun:
//   mpirun -np 4 build/tests/bench_alltoall [--dim D] [--iters N]
//   mpirun -np 4 build/tests/bench_alltoall --check   (round-trip test used by tests/dist)
// Each rank routes its tokens to top-2 of 4 experts per rank (uneven: a skewed distribution,
// and the last expert receives nothing), experts are the identity and combine weights 0.5, so
// dispatch then combine must return the input exactly, and the backward its gradient.
// The baseline calls MPI directly on purpose: it is the reference the framework is measured by.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "moe/ep_dispatcher.h"
#include "src/comm/communicator.h"
#include "src/core/philox.h"

namespace {

using moe::DispatchPlan;
using moe::EpDispatcher;

struct Routing {
  std::vector<int32_t> idx;
  std::vector<float> score, weights;
};

// Skewed top-2: expert e drawn with weight ~ 1/(1+e), never the last expert, two distinct ones.
Routing make_routing(int64_t N, int64_t E, int rank, uint64_t seed) {
  Routing r;
  const uint64_t key = moe::rng_key(seed + uint64_t(rank), "bench_alltoall");
  for (int64_t t = 0; t < N; ++t) {
    int32_t first = -1;
    for (int j = 0; j < 2; ++j) {
      int32_t e;
      uint64_t ctr = uint64_t(t) * 16 + uint64_t(j) * 8;
      do {
        const float u = 0.5f + 0.5f * std::tanh(moe::philox_normal(key, ctr++));
        e = int32_t(double(E - 1) * u * u);  // squares favour the low experts
        if (e >= E - 1) e = int32_t(E - 2);
      } while (e == first);
      first = j == 0 ? e : first;
      r.idx.push_back(e);
      r.score.push_back(1.0f);
      r.weights.push_back(0.5f);
    }
  }
  return r;
}

struct Run {
  DispatchPlan plan;
  std::vector<float> x, out, expert_in, dout, dexpert, dtokens, dweights;
  std::vector<int64_t> offsets;
};

void forward(EpDispatcher& d, Run& r, const Routing& rt, int64_t D) {
  d.dispatch_preprocess(r.plan);
  d.dispatch(r.x.data(), D);
  d.dispatch_postprocess(r.expert_in, r.offsets);
  d.combine_preprocess(r.expert_in.data(), rt.weights.data());  // identity experts
  d.combine();
  std::fill(r.out.begin(), r.out.end(), 0.0f);
  d.combine_postprocess(r.out.data());
}

int check(moe::comm::Communicator& world, int64_t N, int64_t D) {
  const int64_t E = 4 * world.size(), K = 2;
  EpDispatcher d(world, &world, E);
  Routing rt = make_routing(N, E, world.rank(), 7);
  Run r;
  moe::plan_dispatch(r.plan, rt.idx.data(), rt.score.data(), N, K, E, 0.0, N * world.size(), "probs", &world);
  const uint64_t key = moe::rng_key(11 + uint64_t(world.rank()), "x");
  r.x.resize(size_t(N * D));
  r.dout.resize(size_t(N * D));
  for (size_t i = 0; i < r.x.size(); ++i) {
    r.x[i] = moe::philox_normal(key, i);
    r.dout[i] = moe::philox_normal(key, i + r.x.size());
  }
  r.out.resize(r.x.size());
  forward(d, r, rt, D);
  int bad = 0;
  for (size_t i = 0; i < r.x.size(); ++i) bad += r.out[i] != r.x[i];
  // Backward: d(expert_out) goes to the experts, identity experts pass it to d(expert_in).
  r.dexpert.assign(r.expert_in.size(), 0.0f);
  r.dweights.assign(size_t(N * K), 0.0f);
  d.combine_backward(r.dexpert.data(), r.dweights.data(), r.dout.data(), r.expert_in.data(), rt.weights.data());
  r.dtokens.assign(r.x.size(), 0.0f);
  d.dispatch_backward(r.dtokens.data(), r.dexpert.data());
  for (size_t i = 0; i < r.x.size(); ++i) bad += r.dtokens[i] != r.dout[i];
  for (int64_t a = 0; a < N * K; ++a) {  // d(weight) = <expert_out row, dout row> = <x_t, dout_t>
    double dot = 0;
    for (int64_t j = 0; j < D; ++j) dot += double(r.x[size_t((a / K) * D + j)]) * r.dout[size_t((a / K) * D + j)];
    bad += std::fabs(dot - r.dweights[size_t(a)]) > 1e-3 * (1 + std::fabs(dot));
  }
  int64_t received = r.offsets.back(), empty = 0;
  for (size_t j = 0; j + 1 < r.offsets.size(); ++j) empty += r.offsets[j + 1] == r.offsets[j];
  std::printf("rank %d: %lld tokens, received %lld rows, %lld local experts without tokens, %d mismatches\n",
              world.rank(), (long long)N, (long long)received, (long long)empty, bad);
  int64_t total_bad = bad;
  world.allreduce_sum(&total_bad, 1);
  return total_bad == 0 ? 0 : 1;
}

double now() { return MPI_Wtime(); }

void bench(moe::comm::Communicator& world, int64_t D, int iters) {
  const int P = world.size();
  const int64_t E = 4 * P, K = 2;
  if (world.rank() == 0) {
    std::printf("# EP dispatch + combine vs raw MPI_Alltoallv, %d ranks, %lld experts, top-2, D=%lld, fp32\n", P,
                (long long)E, (long long)D);
    std::printf("# bytes: rows sent per rank by dispatch x D x 4 (combine returns as many); time: dispatch +\n");
    std::printf("# combine, max over ranks; algbw = 2 x bytes / time; busbw = algbw x (P-1)/P\n");
    std::printf("%12s %10s %12s %9s %9s %12s %9s %9s\n", "bytes", "tokens", "ep_time_us", "algbw", "busbw",
                "mpi_time_us", "mpi_busbw", "overhead");
  }
  for (int64_t N : {64, 256, 1024, 4096}) {
    EpDispatcher d(world, &world, E);
    Routing rt = make_routing(N, E, world.rank(), 3);
    Run r;
    moe::plan_dispatch(r.plan, rt.idx.data(), rt.score.data(), N, K, E, 0.0, N * P, "probs", &world);
    r.x.assign(size_t(N * D), 1.0f);
    r.out.resize(r.x.size());
    forward(d, r, rt, D);  // warm-up, and the byte counts for the baseline
    std::vector<int> sc(size_t(P), 0), rc(size_t(P), 0), sd(size_t(P), 0), rd(size_t(P), 0);
    for (int64_t e = 0; e < E; ++e)
      sc[size_t(e / 4)] += int((r.plan.offsets[size_t(e + 1)] - r.plan.offsets[size_t(e)]) * D * 4);
    MPI_Alltoall(sc.data(), 1, MPI_INT, rc.data(), 1, MPI_INT, MPI_COMM_WORLD);
    for (int p = 1; p < P; ++p) {
      sd[size_t(p)] = sd[size_t(p - 1)] + sc[size_t(p - 1)];
      rd[size_t(p)] = rd[size_t(p - 1)] + rc[size_t(p - 1)];
    }
    std::vector<char> sb(size_t(sd.back() + sc.back())), rb(size_t(rd.back() + rc.back()));
    double t_ep = 0, t_mpi = 0;
    for (int it = 0; it < iters; ++it) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = now();
      forward(d, r, rt, D);
      t_ep += now() - t0;
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = now();
      MPI_Alltoallv(sb.data(), sc.data(), sd.data(), MPI_BYTE, rb.data(), rc.data(), rd.data(), MPI_BYTE,
                    MPI_COMM_WORLD);
      MPI_Alltoallv(rb.data(), rc.data(), rd.data(), MPI_BYTE, sb.data(), sc.data(), sd.data(), MPI_BYTE,
                    MPI_COMM_WORLD);
      t_mpi += now() - t0;
    }
    double times[2] = {t_ep / iters, t_mpi / iters};
    world.allreduce_max(times, 2);
    double bytes = double(sd.back() + sc.back());
    world.allreduce_max(&bytes, 1);
    if (world.rank() == 0) {
      const double alg = 2 * bytes / times[0] / 1e9, bus = alg * (P - 1) / P;
      const double mpi_bus = 2 * bytes / times[1] / 1e9 * (P - 1) / P;
      std::printf("%12.0f %10lld %12.1f %9.3f %9.3f %12.1f %9.3f %8.0f%%\n", bytes, (long long)N, times[0] * 1e6, alg,
                  bus, times[1] * 1e6, mpi_bus, 100.0 * (times[0] - times[1]) / times[1]);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  moe::comm::Runtime rt(&argc, &argv);
  auto world = rt.world();
  bool check_only = false;
  int64_t D = 512;
  int iters = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") check_only = true;
    else if (a == "--dim" && i + 1 < argc) D = std::stoll(argv[++i]);
    else if (a == "--iters" && i + 1 < argc) iters = std::stoi(argv[++i]);
    else {
      if (world->rank() == 0) std::fprintf(stderr, "usage: bench_alltoall [--check] [--dim D] [--iters N]\n");
      return 2;
    }
  }
  if (check_only) return check(*world, 96, 16);
  bench(*world, D, iters);
  return 0;
}
