// The NCCL communicator over several ranks: reductions, reduce-scatter, broadcast, all-gather(-v),
// all-to-all(-v) with empty and uneven blocks, send/recv, non-blocking twins, split and strings,
// each rank's result against what the Communicator interface promises. One GPU cannot hold two
// NCCL ranks, so this runs under the CPU emulation (tests/gpu/emu/run.sh --step), whose NCCL
// stand-in (tests/gpu/emu/emu_nccl.cpp) runs ranks as threads.
#include <nccl.h>

#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "src/comm/cuda/nccl_communicator.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

using comm::NcclCommunicator;

// Runs body(communicator) on n threads, one NCCL rank each.
void on_nccl_ranks(int n, const std::function<void(NcclCommunicator&)>& body) {
  ncclUniqueId id;
  MOE_NCCL_CHECK(ncclGetUniqueId(&id));
  std::vector<std::thread> ranks;
  for (int r = 0; r < n; ++r)
    ranks.emplace_back([&, r] {
      NcclCommunicator c(id, r, n, "ranks", stream());
      body(c);
    });
  for (auto& t : ranks) t.join();
}

// Host view of a device buffer.
template <typename T>
std::vector<T> host(const T* p, int64_t n) {
  std::vector<T> out(static_cast<size_t>(n));
  MOE_CUDA_CHECK(cudaMemcpy(out.data(), p, sizeof(T) * size_t(n), cudaMemcpyDeviceToHost));
  return out;
}

TEST(GpuNcclRanks, CollectivesOverThreeRanks) {
#ifndef MOE_GPU_EMULATION
  GTEST_SKIP() << "several NCCL ranks need several GPUs: runs under the CPU emulation";
#endif
  const int n = 3;
  on_nccl_ranks(n, [&](NcclCommunicator& c) {
    const int r = c.rank();
    EXPECT_EQ(c.size(), n);
    // sums and max, each type
    std::vector<float> f = {float(r + 1), float(-r)};
    Dev<float> df(f);
    c.allreduce_sum(df.ptr, df.n);
    EXPECT_EQ(df.host(), (std::vector<float>{6.0f, -3.0f}));
    std::vector<double> d = {double(r), 0.5 * r};
    Dev<double> dd(d);
    c.allreduce_max(dd.ptr, dd.n);
    EXPECT_EQ(dd.host(), (std::vector<double>{2.0, 1.0}));
    std::vector<int64_t> i = {int64_t(1) << (40 + r)};
    Dev<int64_t> di(i);
    c.allreduce_sum(di.ptr, di.n);
    EXPECT_EQ(di.host()[0], (int64_t(1) << 40) + (int64_t(1) << 41) + (int64_t(1) << 42));
    // reduce-scatter: block q of every rank's send lands, summed, on rank q
    std::vector<float> rs(size_t(2 * n));
    for (int k = 0; k < 2 * n; ++k) rs[size_t(k)] = float(10 * r + k);
    Dev<float> drs(rs), drecv(2);
    c.reduce_scatter_sum(drs.ptr, drecv.ptr, 2);
    EXPECT_EQ(drecv.host(), (std::vector<float>{float(30 + 3 * 2 * r), float(30 + 3 * (2 * r + 1))}));
    // broadcast from the last rank
    std::vector<int32_t> b = {r, r, r};
    Dev<int32_t> db(b);
    c.broadcast(db.ptr, 3 * int64_t(sizeof(int32_t)), n - 1);
    EXPECT_EQ(db.host(), (std::vector<int32_t>{n - 1, n - 1, n - 1}));
    // all-gather and all-gather-v (rank 1 contributes nothing)
    Dev<int32_t> mine(std::vector<int32_t>{100 + r}), all(n);
    c.allgather(mine.ptr, all.ptr, sizeof(int32_t));
    EXPECT_EQ(all.host(), (std::vector<int32_t>{100, 101, 102}));
    const std::vector<int64_t> vbytes = {2, 0, 3};
    const std::vector<char> vmine(static_cast<size_t>(vbytes[size_t(r)]), char('a' + r));
    Dev<char> vsend(vmine), vrecv(5);
    c.allgatherv(vsend.ptr, vbytes[size_t(r)], vrecv.ptr, vbytes.data());
    EXPECT_EQ(vrecv.host(), (std::vector<char>{'a', 'a', 'c', 'c', 'c'}));
    EXPECT_EQ(c.allgather_string(std::string(size_t(r), 'x') + "!"), (std::vector<std::string>{"!", "x!", "xx!"}));
  });
}

// All-to-all-v with uneven and empty blocks: rank s sends (s + 1) * q bytes of value 10 s + q to
// rank q, except nothing from rank 1 to rank 2.
TEST(GpuNcclRanks, AllToAllVAndPointToPoint) {
#ifndef MOE_GPU_EMULATION
  GTEST_SKIP() << "several NCCL ranks need several GPUs: runs under the CPU emulation";
#endif
  const int n = 3;
  auto bytes = [](int s, int q) { return s == 1 && q == 2 ? int64_t(0) : int64_t((s + 1) * q); };
  on_nccl_ranks(n, [&](NcclCommunicator& c) {
    const int r = c.rank();
    std::vector<int64_t> sb(n), rb(n);
    std::vector<char> send;
    for (int q = 0; q < n; ++q) {
      sb[size_t(q)] = bytes(r, q);
      rb[size_t(q)] = bytes(q, r);
      send.insert(send.end(), size_t(sb[size_t(q)]), char(10 * r + q));
    }
    std::vector<char> want;
    for (int s = 0; s < n; ++s) want.insert(want.end(), size_t(rb[size_t(s)]), char(10 * s + r));
    Dev<char> ds(send), dr(int64_t(std::max<size_t>(want.size(), 1)));
    c.alltoallv(ds.ptr, sb.data(), dr.ptr, rb.data());
    EXPECT_EQ(host(dr.ptr, int64_t(want.size())), want) << "rank " << r;
    Dev<char> dr2(int64_t(std::max<size_t>(want.size(), 1)));
    c.ialltoallv(ds.ptr, sb.data(), dr2.ptr, rb.data())->wait();
    EXPECT_EQ(host(dr2.ptr, int64_t(want.size())), want) << "rank " << r;
    // a ring of blocking send/recv (even ranks send first, so it cannot deadlock)
    Dev<int32_t> out(std::vector<int32_t>{r}), in(1);
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    if (r % 2 == 0) {
      c.send(out.ptr, sizeof(int32_t), next, 0);
      c.recv(in.ptr, sizeof(int32_t), prev, 0);
    } else {
      c.recv(in.ptr, sizeof(int32_t), prev, 0);
      c.send(out.ptr, sizeof(int32_t), next, 0);
    }
    EXPECT_EQ(in.host()[0], prev);
  });
}

// split: ranks 0 and 2 form one group (rank 2 first, by key), rank 1 none.
TEST(GpuNcclRanks, SplitFormsOrderedSubgroups) {
#ifndef MOE_GPU_EMULATION
  GTEST_SKIP() << "several NCCL ranks need several GPUs: runs under the CPU emulation";
#endif
  on_nccl_ranks(3, [&](NcclCommunicator& c) {
    const int r = c.rank();
    auto sub = c.split(r == 1 ? -1 : 0, r == 2 ? 0 : 1, "sub");
    if (r == 1) {
      EXPECT_EQ(sub, nullptr);
      return;
    }
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->size(), 2);
    EXPECT_EQ(sub->rank(), r == 2 ? 0 : 1);
    Dev<float> x(std::vector<float>{float(r)});
    sub->allreduce_sum(x.ptr, 1);
    EXPECT_EQ(x.host()[0], 2.0f);
  });
}

}  // namespace
}  // namespace moe::gpu_test
