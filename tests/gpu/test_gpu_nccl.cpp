// The NCCL communicator with one rank (one GPU): every collective moves or reduces device data as
// the Communicator interface promises, non-blocking calls complete on wait(), operations wait for
// the compute stream's queued work, split() gives a working group, and the watch hooks fire.
#include <nccl.h>

#include <cstring>
#include <vector>

#include "src/comm/cuda/nccl_communicator.h"
#include "tests/gpu/gpu_test_util.h"

namespace moe::gpu_test {
namespace {

using comm::NcclCommunicator;

std::unique_ptr<NcclCommunicator> one_rank(cudaStream_t compute = nullptr, comm::NcclWatch watch = {}) {
  ncclUniqueId id;
  MOE_NCCL_CHECK(ncclGetUniqueId(&id));
  return std::make_unique<NcclCommunicator>(id, 0, 1, "world", compute, std::move(watch));
}

TEST(GpuNccl, ReductionsKeepOneRanksData) {
  MOE_REQUIRE_GPU();
  auto c = one_rank();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  auto x = random_floats(1001, 3);
  Dev<float> dx(x);
  c->allreduce_sum(dx.ptr, dx.n);
  EXPECT_EQ(dx.host(), x);
  std::vector<double> d = {1.5, -2.0, 7.25};
  Dev<double> dd(d);
  c->allreduce_max(dd.ptr, dd.n);
  c->allreduce_sum(dd.ptr, dd.n);
  EXPECT_EQ(dd.host(), d);
  std::vector<int64_t> i = {5, -7, int64_t(1) << 40};
  Dev<int64_t> di(i);
  c->allreduce_sum(di.ptr, di.n);
  EXPECT_EQ(di.host(), i);
  Dev<float> rs(int64_t(1001));
  c->reduce_scatter_sum(dx.ptr, rs.ptr, 1001);
  EXPECT_EQ(rs.host(), x);
  c->barrier();
}

TEST(GpuNccl, DataMovementCopiesBytes) {
  MOE_REQUIRE_GPU();
  auto c = one_rank();
  auto x = random_floats(257, 4);
  const int64_t bytes = int64_t(x.size() * sizeof(float));
  Dev<float> src(x), dst(int64_t(x.size()));
  c->allgather(src.ptr, dst.ptr, bytes);
  EXPECT_EQ(dst.host(), x);
  Dev<float> dst2(int64_t(x.size()));
  c->allgatherv(src.ptr, bytes, dst2.ptr, &bytes);
  EXPECT_EQ(dst2.host(), x);
  Dev<float> dst3(int64_t(x.size()));
  c->alltoall(src.ptr, dst3.ptr, bytes);
  EXPECT_EQ(dst3.host(), x);
  Dev<float> dst4(int64_t(x.size()));
  c->alltoallv(src.ptr, &bytes, dst4.ptr, &bytes);
  EXPECT_EQ(dst4.host(), x);
  c->broadcast(src.ptr, bytes, 0);
  EXPECT_EQ(src.host(), x);
  const int64_t zero = 0;
  c->alltoallv(src.ptr, &zero, dst4.ptr, &zero);  // empty exchange: nothing moves, no hang
  EXPECT_EQ(dst4.host(), x);
  EXPECT_EQ(c->allgather_string("rank zero"), std::vector<std::string>{"rank zero"});
}

TEST(GpuNccl, NonBlockingCompleteOnWait) {
  MOE_REQUIRE_GPU();
  auto c = one_rank();
  auto x = random_floats(4096, 5);
  const int64_t bytes = int64_t(x.size() * sizeof(float));
  Dev<float> a(x), b(int64_t(x.size())), e(int64_t(x.size())), r(int64_t(x.size()));
  auto r1 = c->iallreduce_sum(a.ptr, a.n);
  auto r2 = c->iallgather(a.ptr, b.ptr, bytes);
  auto r3 = c->ialltoallv(a.ptr, &bytes, e.ptr, &bytes);
  auto r4 = c->ireduce_scatter_sum(a.ptr, r.ptr, a.n);
  r4->wait();
  r3->wait();
  r2->wait();
  r1->wait();
  EXPECT_EQ(a.host(), x);
  EXPECT_EQ(b.host(), x);
  EXPECT_EQ(e.host(), x);
  EXPECT_EQ(r.host(), x);
}

// A copy queued on the compute stream must land before the collective reads its buffer.
TEST(GpuNccl, WaitsForTheComputeStream) {
  MOE_REQUIRE_GPU();
  cudaStream_t compute;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  auto c = one_rank(compute);
  const int64_t n = 1 << 22;
  std::vector<float> ones(size_t(n), 1.0f);
  Dev<float> src(ones), buf(n), out(n);
  MOE_CUDA_CHECK(cudaMemsetAsync(buf.ptr, 0, sizeof(float) * size_t(n), compute));
  MOE_CUDA_CHECK(cudaMemcpyAsync(buf.ptr, src.ptr, sizeof(float) * size_t(n), cudaMemcpyDeviceToDevice, compute));
  c->allgather(buf.ptr, out.ptr, int64_t(sizeof(float)) * n);
  EXPECT_EQ(out.host(), ones);
  c.reset();
  MOE_CUDA_CHECK(cudaStreamDestroy(compute));
}

TEST(GpuNccl, SplitAndWatchHooks) {
  MOE_REQUIRE_GPU();
  int guards = 0;
  double timeout = 0;
  comm::NcclWatch watch;
  watch.guard = [&](const std::string& group, const char* op) -> std::shared_ptr<void> {
    EXPECT_FALSE(group.empty());
    EXPECT_NE(std::strlen(op), 0u);
    ++guards;
    return nullptr;
  };
  watch.set_timeout = [&](double s) { timeout = s; };
  auto c = one_rank(nullptr, watch);
  c->set_timeout(12.5);
  EXPECT_EQ(timeout, 12.5);
  auto sub = c->split(0, 0, "ep");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_EQ(sub->name(), "ep");
  auto x = random_floats(33, 6);
  Dev<float> dx(x);
  sub->allreduce_sum(dx.ptr, dx.n);
  EXPECT_EQ(dx.host(), x);
  auto req = c->iallreduce_sum(dx.ptr, dx.n);
  req->wait();
  EXPECT_EQ(guards, 2);  // the blocking call on sub and the wait(): both watched
}

}  // namespace
}  // namespace moe::gpu_test
