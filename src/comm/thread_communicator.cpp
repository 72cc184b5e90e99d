#include "src/comm/thread_communicator.h"

#include <algorithm>
#include <barrier>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>

#include "src/core/error.h"

namespace moe::comm {

namespace {

// memcpy with a count of zero may get null pointers (an empty rank's buffer): skip it (UBSan).
void copy_bytes(void* dst, const void* src, size_t n) {
  if (n > 0) std::memcpy(dst, src, n);
}

// What one rank posts for the collective in progress; the others read it between two barriers.
struct Slot {
  const void* send = nullptr;
  const int64_t* counts = nullptr;
  int64_t bytes = 0;
  int color = 0, key = 0;
};

struct Shared {
  explicit Shared(int n) : size(n), bar(n), slots(size_t(n)) {}
  int size;
  std::barrier<> bar;
  std::vector<Slot> slots;
  // split: the new groups' shared state, published by each color's first member
  std::map<int, std::shared_ptr<Shared>> children;
  // point-to-point mailboxes keyed by (source, destination, tag)
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::tuple<int, int, int>, std::vector<std::vector<char>>> mail;
};

class Done final : public Request {
 public:
  void wait() override {}
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Shared> sh, int rank, std::string name)
      : sh_(std::move(sh)), rank_(rank), name_(std::move(name)) {}
  int rank() const override { return rank_; }
  int size() const override { return sh_->size; }
  const std::string& name() const override { return name_; }

  void barrier() override { sh_->bar.arrive_and_wait(); }
  void allreduce_sum(float* d, int64_t n) override { reduce(d, n, [](float a, float b) { return a + b; }); }
  void allreduce_sum(double* d, int64_t n) override { reduce(d, n, [](double a, double b) { return a + b; }); }
  void allreduce_sum(int64_t* d, int64_t n) override { reduce(d, n, [](int64_t a, int64_t b) { return a + b; }); }
  void allreduce_max(double* d, int64_t n) override { reduce(d, n, [](double a, double b) { return a > b ? a : b; }); }
  void reduce_scatter_sum(const float* send, float* recv, int64_t recv_n) override {
    post(send, nullptr, 0);
    for (int64_t i = 0; i < recv_n; ++i) {
      float s = 0;
      for (int r = 0; r < size(); ++r) s += static_cast<const float*>(slot(r).send)[rank_ * recv_n + i];
      recv[i] = s;
    }
    sh_->bar.arrive_and_wait();
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    post(data, nullptr, bytes);
    if (rank_ != root) copy_bytes(data, slot(root).send, size_t(bytes));
    sh_->bar.arrive_and_wait();
  }
  void allgather(const void* send, void* recv, int64_t bytes) override {
    post(send, nullptr, bytes);
    for (int r = 0; r < size(); ++r) copy_bytes(static_cast<char*>(recv) + r * bytes, slot(r).send, size_t(bytes));
    sh_->bar.arrive_and_wait();
  }
  void allgatherv(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes) override {
    post(send, nullptr, send_bytes);
    int64_t at = 0;
    for (int r = 0; r < size(); ++r) {
      MOE_CHECK(slot(r).bytes == recv_bytes[r], "all_gather_v: rank " + std::to_string(r) + " sent other bytes");
      copy_bytes(static_cast<char*>(recv) + at, slot(r).send, size_t(recv_bytes[r]));
      at += recv_bytes[r];
    }
    sh_->bar.arrive_and_wait();
  }
  std::vector<std::string> allgather_string(const std::string& s) override {
    post(&s, nullptr, 0);
    std::vector<std::string> out;
    for (int r = 0; r < size(); ++r) out.push_back(*static_cast<const std::string*>(slot(r).send));
    sh_->bar.arrive_and_wait();
    return out;
  }
  void alltoall(const void* send, void* recv, int64_t bytes_per_rank) override {
    post(send, nullptr, bytes_per_rank);
    for (int r = 0; r < size(); ++r)
      copy_bytes(static_cast<char*>(recv) + r * bytes_per_rank,
                  static_cast<const char*>(slot(r).send) + rank_ * bytes_per_rank, size_t(bytes_per_rank));
    sh_->bar.arrive_and_wait();
  }
  void alltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override {
    post(send, send_bytes, 0);
    int64_t at = 0;
    for (int r = 0; r < size(); ++r) {
      const int64_t* theirs = slot(r).counts;
      int64_t from = 0;
      for (int q = 0; q < rank_; ++q) from += theirs[q];
      MOE_CHECK(theirs[rank_] == recv_bytes[r], "all_to_all_v: rank " + std::to_string(r) + " sends " +
                                                    std::to_string(theirs[rank_]) + " bytes, " +
                                                    std::to_string(recv_bytes[r]) + " expected");
      copy_bytes(static_cast<char*>(recv) + at, static_cast<const char*>(slot(r).send) + from, size_t(recv_bytes[r]));
      at += recv_bytes[r];
    }
    sh_->bar.arrive_and_wait();
  }
  void send(const void* data, int64_t bytes, int peer, int tag) override {
    std::lock_guard<std::mutex> lock(sh_->mu);
    const char* p = static_cast<const char*>(data);
    sh_->mail[{rank_, peer, tag}].emplace_back(p, p + bytes);
    sh_->cv.notify_all();
  }
  void recv(void* data, int64_t bytes, int peer, int tag) override {
    std::unique_lock<std::mutex> lock(sh_->mu);
    auto& box = sh_->mail[{peer, rank_, tag}];
    sh_->cv.wait(lock, [&] { return !box.empty(); });
    MOE_CHECK(int64_t(box.front().size()) == bytes, "recv: message size differs from the posted size");
    copy_bytes(data, box.front().data(), size_t(bytes));
    box.erase(box.begin());
  }

  RequestPtr iallreduce_sum(float* d, int64_t n) override { return done([&] { allreduce_sum(d, n); }); }
  RequestPtr ireduce_scatter_sum(const float* s, float* r, int64_t n) override {
    return done([&] { reduce_scatter_sum(s, r, n); });
  }
  RequestPtr iallgather(const void* s, void* r, int64_t b) override { return done([&] { allgather(s, r, b); }); }
  RequestPtr ialltoallv(const void* s, const int64_t* sb, void* r, const int64_t* rb) override {
    return done([&] { alltoallv(s, sb, r, rb); });
  }
  RequestPtr isend(const void* d, int64_t b, int p, int t) override { return done([&] { send(d, b, p, t); }); }
  // A receive cannot complete early without deadlocking a matching later send: it is deferred.
  RequestPtr irecv(void* d, int64_t b, int p, int t) override {
    struct Deferred final : Request {
      std::function<void()> f;
      void wait() override { f(); }
    };
    auto r = std::make_unique<Deferred>();
    r->f = [this, d, b, p, t] { recv(d, b, p, t); };
    return r;
  }

  std::shared_ptr<Communicator> split(int color, int key, const std::string& name) override {
    Slot& mine = sh_->slots[size_t(rank_)];
    mine.color = color;
    mine.key = key;
    sh_->bar.arrive_and_wait();
    // members of my color ordered by (key, old rank); the first one creates the shared state
    std::vector<std::pair<int, int>> members;
    for (int r = 0; r < size(); ++r)
      if (sh_->slots[size_t(r)].color == color) members.emplace_back(sh_->slots[size_t(r)].key, r);
    std::sort(members.begin(), members.end());
    int new_rank = 0;
    while (members[size_t(new_rank)].second != rank_) ++new_rank;
    if (new_rank == 0) {
      std::lock_guard<std::mutex> lock(sh_->mu);
      sh_->children[color] = std::make_shared<Shared>(int(members.size()));
    }
    sh_->bar.arrive_and_wait();
    std::shared_ptr<Shared> child;
    {
      std::lock_guard<std::mutex> lock(sh_->mu);
      child = sh_->children.at(color);
    }
    sh_->bar.arrive_and_wait();
    if (rank_ == 0) sh_->children.clear();
    sh_->bar.arrive_and_wait();
    return std::make_shared<ThreadCommunicator>(child, new_rank, name);
  }
  void set_timeout(double) override {}

 private:
  const Slot& slot(int r) const { return sh_->slots[size_t(r)]; }
  // Publishes this rank's buffers and waits until every rank has.
  void post(const void* send, const int64_t* counts, int64_t bytes) {
    sh_->slots[size_t(rank_)] = Slot{send, counts, bytes, 0, 0};
    sh_->bar.arrive_and_wait();
  }
  // Rank-ordered reduction, so every member gets the same bits.
  template <class T, class Op>
  void reduce(T* data, int64_t n, Op op) {
    post(data, nullptr, n);
    std::vector<T> acc(static_cast<const T*>(slot(0).send), static_cast<const T*>(slot(0).send) + n);
    for (int r = 1; r < size(); ++r)
      for (int64_t i = 0; i < n; ++i) acc[size_t(i)] = op(acc[size_t(i)], static_cast<const T*>(slot(r).send)[i]);
    sh_->bar.arrive_and_wait();
    copy_bytes(data, acc.data(), sizeof(T) * size_t(n));
  }
  template <class F>
  RequestPtr done(F&& f) {
    f();
    return std::make_unique<Done>();
  }

  std::shared_ptr<Shared> sh_;
  int rank_;
  std::string name_;
};

}  // namespace

std::vector<std::shared_ptr<Communicator>> make_thread_group(int n, const std::string& name) {
  auto sh = std::make_shared<Shared>(n);
  std::vector<std::shared_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_shared<ThreadCommunicator>(sh, r, name));
  return out;
}

}  // namespace moe::comm
