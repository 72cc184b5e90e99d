// The communication interface. Only src/comm talks to MPI (and, with the CUDA backend, NCCL);
// everything else receives a Communicator for an explicit group (src/comm/process_grid.h).
//
// Buffers are host pointers here; an NCCL implementation takes device pointers with the same
// calls (ncclAllReduce, ncclReduceScatter, ncclAllGather, and all-to-all-v as grouped
// ncclSend/ncclRecv). Sizes are element counts for typed reductions and byte counts for data
// movement, so the byte-moving calls map onto ncclSend/ncclRecv of ncclInt8.
// Every member of a group must issue the same collectives in the same order (docs/distributed.md).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moe::comm {

// A started non-blocking operation. wait() returns when its buffers may be read or reused; it
// must be called exactly once before the handle is destroyed (a destructor without wait() waits).
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
};
using RequestPtr = std::unique_ptr<Request>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;  // group name for messages ("world", "dp", "ep", ...)

  virtual void barrier() = 0;
  // In-place reductions over the group (element counts).
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  virtual void allreduce_sum(int64_t* data, int64_t n) = 0;
  virtual void allreduce_max(double* data, int64_t n) = 0;
  // send holds size() blocks of recv_n floats; block r, summed over ranks, lands on rank r.
  virtual void reduce_scatter_sum(const float* send, float* recv, int64_t recv_n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // recv holds size() blocks of `bytes`, in rank order.
  virtual void allgather(const void* send, void* recv, int64_t bytes) = 0;
  // Rank r contributes recv_bytes[r] bytes (its own send_bytes); recv is packed in rank order.
  virtual void allgatherv(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes) = 0;
  virtual std::vector<std::string> allgather_string(const std::string& s) = 0;
  // Block r of `bytes_per_rank` bytes goes to rank r; recv block r came from rank r.
  virtual void alltoall(const void* send, void* recv, int64_t bytes_per_rank) = 0;
  // send_bytes[r] bytes go to rank r and recv_bytes[r] come from rank r; both buffers are packed
  // in rank order (displacements are the prefix sums).
  virtual void alltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) = 0;
  virtual void send(const void* data, int64_t bytes, int peer, int tag) = 0;
  virtual void recv(void* data, int64_t bytes, int peer, int tag) = 0;

  // Non-blocking twins: the buffers (and the count arrays) must stay alive until wait().
  virtual RequestPtr iallreduce_sum(float* data, int64_t n) = 0;
  virtual RequestPtr ireduce_scatter_sum(const float* send, float* recv, int64_t recv_n) = 0;
  virtual RequestPtr iallgather(const void* send, void* recv, int64_t bytes) = 0;
  virtual RequestPtr ialltoallv(const void* send, const int64_t* send_bytes, void* recv,
                                const int64_t* recv_bytes) = 0;
  virtual RequestPtr isend(const void* data, int64_t bytes, int peer, int tag) = 0;
  virtual RequestPtr irecv(void* data, int64_t bytes, int peer, int tag) = 0;

  // Collective over this group: members with the same color form a new group, ordered by key.
  virtual std::shared_ptr<Communicator> split(int color, int key, const std::string& name) = 0;
  // Any collective of this process (on this group and every group split from the same world)
  // that has not completed within `seconds` aborts the whole job with a message naming the
  // rank, group and operation. <= 0 disables the watchdog.
  virtual void set_timeout(double seconds) = 0;
  // Arms the watchdog that watches this group's collectives around an operation of another
  // library (an NCCL communicator's blocking wait: NcclWatch::guard) until the returned guard is
  // destroyed, so a stall there is reported like one here. Null where no watchdog runs.
  virtual std::shared_ptr<void> watch(const std::string& group, const char* op) {
    (void)group;
    (void)op;
    return nullptr;
  }
};

// Initialises MPI once per process (finalised at exit). Safe without mpirun: a singleton world.
class Runtime {
 public:
  Runtime(int* argc, char*** argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  std::shared_ptr<Communicator> world() const { return world_; }
  // Ranks on this node (for thread counts).
  int local_size() const { return local_size_; }

 private:
  std::shared_ptr<Communicator> world_;
  std::shared_ptr<class Watchdog> watchdog_;
  int local_size_ = 1;
};

// Aborts every rank of the job (after printing `why`); used when one rank fails alone.
[[noreturn]] void abort_job(const std::string& why, int exit_code);

// Prefix sums of n counts: out[0] = 0, out[i+1] = out[i] + counts[i].
std::vector<int64_t> exclusive_prefix(const int64_t* counts, int n);

}  // namespace moe::comm
