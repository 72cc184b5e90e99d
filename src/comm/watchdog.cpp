#include "src/comm/watchdog.h"

#include <algorithm>
#include <cstdio>

namespace moe::comm {

Watchdog::Watchdog(int world_rank, Abort on_timeout) : rank_(world_rank), on_timeout_(std::move(on_timeout)) {}

Watchdog::~Watchdog() { stop(); }

void Watchdog::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::set_timeout(double seconds) {
  timeout_s_.store(seconds);
  std::lock_guard<std::mutex> lock(mu_);
  if (seconds > 0 && !thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();
}

std::string Watchdog::timeout_message(int rank, const std::string& group, const std::string& op, double seconds) {
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%g", seconds);
  return "rank " + std::to_string(rank) + ": " + op + " on group " + group + " did not complete within " + secs +
         " s (parallel.timeout_s); another rank is stalled, crashed or issued a different collective";
}

uint64_t Watchdog::arm(const std::string& group, const char* op) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  pending_.emplace(id, Pending{group, op, Clock::now()});
  return id;
}

void Watchdog::disarm(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  last_done_ = Pending{it->second.group, it->second.op, Clock::now()};
  pending_.erase(it);
}

PeerStatus Watchdog::status_locked() const {
  const bool busy = !pending_.empty();
  const Pending& p = busy ? pending_.begin()->second : last_done_;
  return PeerStatus{busy, p.group, p.op, std::chrono::duration<double>(Clock::now() - p.start).count()};
}

// Polls a few times per timeout; the oldest pending operation is the one reported.
void Watchdog::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const double t = timeout_s_.load();
    const auto period = std::chrono::duration<double>(t > 0 ? std::min(t / 10.0, 0.5) : 0.5);
    cv_.wait_for(lock, period);
    if (stop_ || fired_ || t <= 0) continue;
    if (probe_) {
      const PeerStatus mine = status_locked();
      lock.unlock();
      probe_->serve(mine);
      lock.lock();
    }
    if (pending_.empty()) continue;
    const Pending oldest = pending_.begin()->second;
    if (std::chrono::duration<double>(Clock::now() - oldest.start).count() < t) continue;
    fired_ = true;
    std::string msg = timeout_message(rank_, oldest.group, oldest.op, t);
    const PeerStatus mine = status_locked();
    lock.unlock();
    if (probe_) {
      // A rank outside any collective has usually been there for about t already; a short
      // deadline suffices for live ranks, whose watchdogs poll at least every 0.5 s.
      const double deadline = std::min(std::max(2.0, t), 10.0);
      msg += describe_peers(probe_->survey(mine, deadline), rank_, oldest.group, oldest.op, deadline);
    }
    on_timeout_(msg);
    lock.lock();
  }
}

Watchdog::Guard::Guard(Watchdog* w, const std::string& group, const char* op) : w_(w) {
  if (w_ && w_->timeout() > 0) id_ = w_->arm(group, op);
}

Watchdog::Guard::~Guard() {
  if (id_) w_->disarm(id_);
}

}  // namespace moe::comm
