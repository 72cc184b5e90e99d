// Collectives of the in-process thread group (the fake communicator of the dispatcher tests) and
// the watchdog's report.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <numeric>
#include <thread>

#include "src/comm/thread_communicator.h"
#include "src/comm/watchdog.h"

namespace moe::comm {
namespace {

void on_ranks(int n, const std::function<void(Communicator&)>& body) {
  auto group = make_thread_group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(*group[size_t(r)]); });
  for (auto& t : threads) t.join();
}

TEST(CommThread, AllToAllVUnevenAndEmpty) {
  // rank r sends (r + q) % 3 ints to rank q, each int = 100*r + q
  on_ranks(4, [](Communicator& c) {
    const int P = c.size(), me = c.rank();
    std::vector<int64_t> sb(static_cast<size_t>(P)), rb(static_cast<size_t>(P));
    std::vector<int32_t> send;
    for (int q = 0; q < P; ++q) {
      const int n = (me + q) % 3;
      sb[size_t(q)] = n * 4;
      for (int i = 0; i < n; ++i) send.push_back(100 * me + q);
    }
    for (int q = 0; q < P; ++q) rb[size_t(q)] = ((q + me) % 3) * 4;
    std::vector<int32_t> recv(size_t(std::accumulate(rb.begin(), rb.end(), int64_t(0)) / 4));
    c.alltoallv(send.data(), sb.data(), recv.data(), rb.data());
    size_t at = 0;
    for (int q = 0; q < P; ++q)
      for (int i = 0; i < (q + me) % 3; ++i) EXPECT_EQ(recv[at++], 100 * q + me);
    EXPECT_EQ(at, recv.size());
  });
}

TEST(CommThread, ReductionsGathersAndPointToPoint) {
  on_ranks(3, [](Communicator& c) {
    const int me = c.rank();
    std::vector<float> v = {float(me), 1.0f};
    c.iallreduce_sum(v.data(), 2)->wait();
    EXPECT_EQ(v[0], 3.0f);
    EXPECT_EQ(v[1], 3.0f);
    std::vector<float> blocks = {float(me), float(10 * me), float(100 * me)};
    float mine = 0;
    c.reduce_scatter_sum(blocks.data(), &mine, 1);
    EXPECT_EQ(mine, float(std::pow(10, me) * 3));
    std::vector<char> sendv(size_t(me + 1), char('a' + me));
    std::vector<int64_t> lens = {1, 2, 3};
    std::string all(6, '?');
    c.allgatherv(sendv.data(), int64_t(sendv.size()), all.data(), lens.data());
    EXPECT_EQ(all, "abbccc");
    EXPECT_EQ(c.allgather_string(std::to_string(me)), (std::vector<std::string>{"0", "1", "2"}));
    // a ring of sends: post the receive first, as a non-blocking one
    int got = -1, out = me;
    auto rq = c.irecv(&got, sizeof(int), (me + 2) % 3, 7);
    c.send(&out, sizeof(int), (me + 1) % 3, 7);
    rq->wait();
    EXPECT_EQ(got, (me + 2) % 3);
  });
}

TEST(CommWatchdog, ReportsRankGroupAndOperation) {
  std::mutex mu;
  std::condition_variable cv;
  std::string message;
  Watchdog wd(2, [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    message = m;
    cv.notify_all();
  });
  wd.set_timeout(0.05);
  {
    Watchdog::Guard g(&wd, "ep", "all_to_all_v");
    std::unique_lock<std::mutex> lock(mu);
    // Waits for the report, however slow the machine; the test asserts the text, not a time.
    cv.wait(lock, [&] { return !message.empty(); });
  }
  EXPECT_EQ(message.rfind("rank 2: all_to_all_v on group ep did not complete within 0.05 s", 0), 0u) << message;
}

}  // namespace
}  // namespace moe::comm
