// The Communicator interface over NCCL, on device pointers (docs/cuda.md). Every operation is
// enqueued on the communicator's own stream after the work already queued on the compute stream
// (an event), so kernels that produced the operands finish first and compute issued later can
// overlap the transfer. Blocking calls return when the transfer is complete; non-blocking ones
// return a Request whose wait() blocks on the operation's event.
//
// NCCL has no message tags: send/recv between a pair of ranks match in issue order (the tag
// argument is ignored), which the pipeline schedule guarantees by issuing them deterministically.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <memory>
#include <string>

#include "src/comm/communicator.h"

namespace moe::comm {

// Hooks into the process watchdog (src/comm/watchdog.h), kept abstract so this library needs
// neither MPI nor moe_lib: guard() marks a blocking wait until the returned token is released.
struct NcclWatch {
  std::function<std::shared_ptr<void>(const std::string& group, const char* op)> guard;
  std::function<void(double seconds)> set_timeout;
};

class NcclCommunicator final : public Communicator {
 public:
  // Joins the NCCL communicator of `size` ranks created from rank 0's `id` (ncclCommInitRank; the
  // current CUDA device is this rank's device). compute: the stream whose queued work operands
  // depend on (null = the legacy default stream).
  NcclCommunicator(const ncclUniqueId& id, int rank, int size, std::string name, cudaStream_t compute = nullptr,
                   NcclWatch watch = {});
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  cudaStream_t stream() const { return stream_; }

  void barrier() override;
  void allreduce_sum(float* data, int64_t n) override;
  void allreduce_sum(double* data, int64_t n) override;
  void allreduce_sum(int64_t* data, int64_t n) override;
  void allreduce_max(double* data, int64_t n) override;
  void reduce_scatter_sum(const float* send, float* recv, int64_t recv_n) override;
  void broadcast(void* data, int64_t bytes, int root) override;
  void allgather(const void* send, void* recv, int64_t bytes) override;
  void allgatherv(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes) override;
  // Host strings (staged through device memory).
  std::vector<std::string> allgather_string(const std::string& s) override;
  void alltoall(const void* send, void* recv, int64_t bytes_per_rank) override;
  void alltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override;
  void send(const void* data, int64_t bytes, int peer, int tag) override;
  void recv(void* data, int64_t bytes, int peer, int tag) override;

  RequestPtr iallreduce_sum(float* data, int64_t n) override;
  RequestPtr ireduce_scatter_sum(const float* send, float* recv, int64_t recv_n) override;
  RequestPtr iallgather(const void* send, void* recv, int64_t bytes) override;
  RequestPtr ialltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override;
  RequestPtr isend(const void* data, int64_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, int64_t bytes, int peer, int tag) override;

  // ncclCommSplit: collective over this group; the new group shares the compute stream and watch.
  std::shared_ptr<Communicator> split(int color, int key, const std::string& name) override;
  void set_timeout(double seconds) override;

 private:
  NcclCommunicator(ncclComm_t comm, std::string name, cudaStream_t compute, NcclWatch watch);
  void init_resources();
  void begin();                        // the comm stream waits for the compute stream's queued work
  void finish(const char* op);         // blocks until the comm stream's work is done (watched)
  RequestPtr request(const char* op);  // an event after the queued operation
  void allreduce(void* data, int64_t n, ncclDataType_t type, ncclRedOp_t op);  // blocking, in place
  void enqueue_alltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes);

  ncclComm_t comm_ = nullptr;
  std::string name_;
  cudaStream_t compute_ = nullptr, stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // recorded on the compute stream by begin()
  NcclWatch watch_;
  float* scratch_ = nullptr;     // device word for barrier()
  int rank_ = 0, size_ = 1;
};

// Collective over `bootstrap` (an MPI communicator of the same ranks in the same order): its rank 0
// creates the NCCL id and broadcasts it.
std::shared_ptr<NcclCommunicator> make_nccl_communicator(Communicator& bootstrap, const std::string& name,
                                                         cudaStream_t compute = nullptr, NcclWatch watch = {});

}  // namespace moe::comm
