// A per-process watchdog thread: communicators arm it around each blocking call, and when one
// has not completed within the timeout it reports "rank R: OP on group G did not complete
// within T s" and aborts the job, so a lost peer never leaves the others hanging silently.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/comm/peer_status.h"

namespace moe::comm {

class Watchdog {
 public:
  using Abort = std::function<void(const std::string& message)>;
  // `on_timeout` must not return (it aborts the job); tests pass one that records the message.
  Watchdog(int world_rank, Abort on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_timeout(double seconds);  // <= 0 disables; starts the thread on first use
  // With a probe, the thread answers other ranks' status questions, and on a timeout it asks all
  // ranks what they are doing so the message names the stalled one. Set before set_timeout.
  void set_probe(std::shared_ptr<PeerProbe> probe) { probe_ = std::move(probe); }
  // Stops the thread (before MPI is finalised); later operations are not watched.
  void stop();
  double timeout() const { return timeout_s_.load(); }

  // Marks one operation in flight until the guard is destroyed.
  class Guard {
   public:
    Guard(Watchdog* w, const std::string& group, const char* op);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Watchdog* w_;
    uint64_t id_ = 0;
  };

  // The message the watchdog prints for an operation (one place, so tests can match it).
  static std::string timeout_message(int rank, const std::string& group, const std::string& op, double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    std::string group, op;
    Clock::time_point start;
  };
  uint64_t arm(const std::string& group, const char* op);
  void disarm(uint64_t id);
  void run();
  PeerStatus status_locked() const;  // this rank's answer to a survey (mu_ held)

  int rank_;
  Abort on_timeout_;
  std::atomic<double> timeout_s_{0.0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Pending> pending_;
  Pending last_done_{"", "", Clock::now()};  // the most recently completed operation
  std::shared_ptr<PeerProbe> probe_;
  uint64_t next_id_ = 1;
  bool stop_ = false, fired_ = false;
  std::thread thread_;
};

}  // namespace moe::comm
