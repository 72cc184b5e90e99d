// The NCCL stand-in of include/nccl.h: communicators of threads in one process.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "nccl.h"

namespace {

// One posted send: the receiver copies it and marks it taken.
struct Message {
  const void* data;
  size_t bytes;
  bool taken = false;
};

struct Group {
  explicit Group(int n) : size(n), sync(n), slots(size_t(n)), splits(size_t(n)), boxes(size_t(n) * size_t(n)) {}
  int size;
  std::barrier<> sync;
  std::vector<const void*> slots;              // each rank's buffer of the collective in progress
  std::vector<std::pair<int, int>> splits;     // (color, key) per rank during ncclCommSplit
  std::map<int, std::shared_ptr<Group>> children;  // by color, during ncclCommSplit
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::deque<std::shared_ptr<Message>>> boxes;  // [from * size + to], in issue order
};

}  // namespace

struct EmuNcclComm {
  std::shared_ptr<Group> group;
  int rank = 0;
};

namespace {

std::mutex registry_mu;
std::map<std::string, std::shared_ptr<Group>> registry;  // by unique id, while ranks join
std::atomic<uint64_t> next_id{1};

thread_local bool in_group = false;
thread_local std::vector<std::pair<Group*, std::shared_ptr<Message>>> group_sends;

size_t type_bytes(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: return 1;
    case ncclInt32: return 4;
    case ncclInt64: return 8;
    case ncclFloat: return 4;
    case ncclDouble: return 8;
  }
  throw std::runtime_error("emu nccl: unknown data type");
}

template <typename T>
void reduce_into(T* out, const std::vector<const void*>& in, size_t n, ncclRedOp_t op) {
  for (size_t i = 0; i < n; ++i) {
    T acc = static_cast<const T*>(in[0])[i];
    for (size_t r = 1; r < in.size(); ++r) {
      const T x = static_cast<const T*>(in[r])[i];
      acc = op == ncclSum ? T(acc + x) : std::max(acc, x);
    }
    out[i] = acc;
  }
}

// Rank order sums (the same result on every rank), computed privately before anyone writes.
void reduce(void* out, const std::vector<const void*>& in, size_t n, ncclDataType_t t, ncclRedOp_t op) {
  switch (t) {
    case ncclInt8: return reduce_into(static_cast<int8_t*>(out), in, n, op);
    case ncclInt32: return reduce_into(static_cast<int32_t*>(out), in, n, op);
    case ncclInt64: return reduce_into(static_cast<int64_t*>(out), in, n, op);
    case ncclFloat: return reduce_into(static_cast<float*>(out), in, n, op);
    case ncclDouble: return reduce_into(static_cast<double*>(out), in, n, op);
  }
}

// Publishes this rank's buffer; returns every rank's once all have published.
std::vector<const void*> publish(EmuNcclComm* c, const void* mine) {
  c->group->slots[size_t(c->rank)] = mine;
  c->group->sync.arrive_and_wait();
  return c->group->slots;
}

// After each rank computed its result privately: nobody writes until all have read.
void done_reading(EmuNcclComm* c) { c->group->sync.arrive_and_wait(); }

void post(EmuNcclComm* c, int peer, const void* data, size_t bytes, bool wait) {
  Group& g = *c->group;
  auto m = std::make_shared<Message>(Message{data, bytes});
  std::unique_lock<std::mutex> lock(g.mu);
  g.boxes[size_t(c->rank) * size_t(g.size) + size_t(peer)].push_back(m);
  g.cv.notify_all();
  if (wait) g.cv.wait(lock, [&] { return m->taken; });
  else group_sends.push_back({&g, m});
}

void take(EmuNcclComm* c, int peer, void* data, size_t bytes) {
  Group& g = *c->group;
  std::unique_lock<std::mutex> lock(g.mu);
  auto& box = g.boxes[size_t(peer) * size_t(g.size) + size_t(c->rank)];
  g.cv.wait(lock, [&] { return !box.empty(); });
  const std::shared_ptr<Message> m = box.front();
  box.pop_front();
  if (m->bytes != bytes) throw std::runtime_error("emu nccl: send and receive sizes differ");
  if (bytes > 0) std::memcpy(data, m->data, bytes);
  m->taken = true;
  g.cv.notify_all();
}

}  // namespace

const char* ncclGetErrorString(ncclResult_t r) { return r == ncclSuccess ? "no error" : "emulated NCCL error"; }

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id->internal, 0, sizeof(id->internal));
  const uint64_t v = next_id++;
  std::memcpy(id->internal, &v, sizeof(v));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  const std::string key(id.internal, sizeof(id.internal));
  std::shared_ptr<Group> g;
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    auto& slot = registry[key];
    if (!slot) slot = std::make_shared<Group>(nranks);
    g = slot;
  }
  if (g->size != nranks) return ncclInvalidUsage;
  *comm = new EmuNcclComm{g, rank};
  g->sync.arrive_and_wait();  // every rank has joined
  if (rank == 0) {
    std::lock_guard<std::mutex> lock(registry_mu);
    registry.erase(key);
  }
  return ncclSuccess;
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, ncclConfig_t*) {
  Group& g = *comm->group;
  g.splits[size_t(comm->rank)] = {color, key};
  g.sync.arrive_and_wait();
  if (comm->rank == 0) {
    g.children.clear();
    for (int r = 0; r < g.size; ++r) {
      const int c = g.splits[size_t(r)].first;
      if (c == NCCL_SPLIT_NOCOLOR || g.children.count(c)) continue;
      int n = 0;
      for (const auto& s : g.splits) n += s.first == c;
      g.children[c] = std::make_shared<Group>(n);
    }
  }
  g.sync.arrive_and_wait();
  *newcomm = nullptr;
  if (color != NCCL_SPLIT_NOCOLOR) {
    int rank = 0;  // ordered by key, then by parent rank
    for (int r = 0; r < g.size; ++r) {
      const auto [c, k] = g.splits[size_t(r)];
      if (c == color && (k < key || (k == key && r < comm->rank))) ++rank;
    }
    *newcomm = new EmuNcclComm{g.children.at(color), rank};
  }
  g.sync.arrive_and_wait();  // all have taken their child before the next split clears them
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}
ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  *count = comm->group->size;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() {
  in_group = true;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  in_group = false;
  for (auto& [g, m] : group_sends) {
    std::unique_lock<std::mutex> lock(g->mu);
    g->cv.wait(lock, [&] { return m->taken; });
  }
  group_sends.clear();
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t) {
  const auto all = publish(comm, send);
  std::vector<char> mine(count * type_bytes(type));
  reduce(mine.data(), all, count, type, op);
  done_reading(comm);
  if (!mine.empty()) std::memcpy(recv, mine.data(), mine.size());
  return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t) {
  auto all = publish(comm, send);
  const size_t bytes = recv_count * type_bytes(type);
  for (auto& p : all) p = static_cast<const char*>(p) + size_t(comm->rank) * bytes;
  std::vector<char> mine(bytes);
  reduce(mine.data(), all, recv_count, type, op);
  done_reading(comm);
  if (bytes > 0) std::memcpy(recv, mine.data(), bytes);
  return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t) {
  const auto all = publish(comm, send);
  const size_t bytes = count * type_bytes(type);
  std::vector<char> mine(static_cast<const char*>(all[size_t(root)]), static_cast<const char*>(all[size_t(root)]) + bytes);
  done_reading(comm);
  if (bytes > 0) std::memcpy(recv, mine.data(), bytes);
  return ncclSuccess;
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t) {
  const auto all = publish(comm, send);
  const size_t bytes = send_count * type_bytes(type);
  std::vector<char> mine(bytes * all.size());
  for (size_t r = 0; r < all.size(); ++r)
    if (bytes > 0) std::memcpy(mine.data() + r * bytes, all[r], bytes);
  done_reading(comm);
  if (!mine.empty()) std::memcpy(recv, mine.data(), mine.size());
  return ncclSuccess;
}

ncclResult_t ncclSend(const void* send, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t) {
  if (peer < 0 || peer >= comm->group->size) return ncclInvalidArgument;
  post(comm, peer, send, count * type_bytes(type), /*wait=*/!in_group);
  return ncclSuccess;
}

ncclResult_t ncclRecv(void* recv, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t) {
  if (peer < 0 || peer >= comm->group->size) return ncclInvalidArgument;
  take(comm, peer, recv, count * type_bytes(type));
  return ncclSuccess;
}
