// The watchdog's peer diagnosis: the wire format round-trips, and the description names stalled,
// mismatched and silent ranks (and only those).
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "src/comm/peer_status.h"
#include "src/comm/watchdog.h"

namespace moe::comm {
namespace {

TEST(CommPeerStatus, EncodeDecodeRoundTrip) {
  const PeerStatus in{true, "ep", "all_to_all_v", 3.25};
  const auto out = decode_status(encode_status(in));
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->in_collective);
  EXPECT_EQ(out->group, "ep");
  EXPECT_EQ(out->op, "all_to_all_v");
  EXPECT_DOUBLE_EQ(out->seconds, 3.25);
  const auto idle = decode_status(encode_status(PeerStatus{false, "", "", 0.5}));
  ASSERT_TRUE(idle.has_value());
  EXPECT_FALSE(idle->in_collective);
  EXPECT_EQ(idle->op, "");
  EXPECT_FALSE(decode_status("X|a|b|1").has_value());
  EXPECT_FALSE(decode_status("C|a|b").has_value());
  EXPECT_FALSE(decode_status("C|a|b|zz").has_value());
}

TEST(CommPeerStatus, NamesStalledMismatchedAndSilentRanks) {
  std::vector<std::optional<PeerStatus>> st(4);
  st[0] = PeerStatus{true, "dp", "all_reduce", 3.1};        // self
  st[1] = PeerStatus{false, "world", "all_reduce", 3.4};    // stalled outside any collective
  st[2] = PeerStatus{true, "ep", "all_to_all_v", 3.0};      // waits elsewhere
  st[3] = std::nullopt;                                     // dead or frozen
  const std::string d = describe_peers(st, 0, "dp", "all_reduce", 2.0);
  EXPECT_NE(d.find("stalled: rank 1 is outside any collective for 3.4 s (last completed: all_reduce on group world)"),
            std::string::npos) << d;
  EXPECT_NE(d.find("different collective: rank 2 waits in all_to_all_v on group ep"), std::string::npos) << d;
  EXPECT_NE(d.find("(dead or frozen): rank 3"), std::string::npos) << d;
  EXPECT_EQ(d.find("rank 0"), std::string::npos) << d;
}

TEST(CommPeerStatus, PeersInTheSameCollectiveAreNotBlamed) {
  std::vector<std::optional<PeerStatus>> st(2);
  st[0] = PeerStatus{true, "dp", "all_reduce", 3.1};
  st[1] = PeerStatus{true, "dp", "all_reduce", 3.0};
  EXPECT_EQ(describe_peers(st, 0, "dp", "all_reduce", 2.0), "");
}

// A probe that answers for a fake peer: the watchdog appends its diagnosis to the timeout message
// and reports its own pending operation in the survey.
class FakeProbe final : public PeerProbe {
 public:
  void serve(const PeerStatus&) override {}
  std::vector<std::optional<PeerStatus>> survey(const PeerStatus& mine, double) override {
    seen = mine;
    return {mine, PeerStatus{false, "dp", "all_reduce", 9.0}};
  }
  PeerStatus seen;
};

TEST(CommPeerStatus, WatchdogAppendsTheSurvey) {
  std::mutex mu;
  std::condition_variable cv;
  std::string message;
  Watchdog wd(0, [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    message = m;
    cv.notify_all();
  });
  auto probe = std::make_shared<FakeProbe>();
  wd.set_probe(probe);
  wd.set_timeout(0.05);
  {
    Watchdog::Guard g(&wd, "ep", "all_to_all_v");
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !message.empty(); });
  }
  EXPECT_TRUE(probe->seen.in_collective);
  EXPECT_EQ(probe->seen.op, "all_to_all_v");
  EXPECT_NE(message.find("stalled: rank 1 is outside any collective for 9.0 s"), std::string::npos) << message;
}

}  // namespace
}  // namespace moe::comm
