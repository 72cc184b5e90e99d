#include "src/comm/cuda/nccl_communicator.h"

#include <vector>

#include "kernels/cuda/cuda_check.h"

namespace moe::comm {

namespace {

size_t count(int64_t n) {
  MOE_CUDA_REQUIRE(n >= 0, "negative element or byte count");
  return size_t(n);
}

class NcclRequest final : public Request {
 public:
  NcclRequest(cudaEvent_t done, std::function<std::shared_ptr<void>()> guard) : done_(done), guard_(std::move(guard)) {}
  ~NcclRequest() override {
    if (done_) {
      cudaEventSynchronize(done_);  // a destructor without wait() waits (the interface's rule)
      cudaEventDestroy(done_);
    }
  }
  void wait() override {
    const std::shared_ptr<void> watched = guard_ ? guard_() : nullptr;
    MOE_CUDA_CHECK(cudaEventSynchronize(done_));
    MOE_CUDA_CHECK(cudaEventDestroy(done_));
    done_ = nullptr;
  }

 private:
  cudaEvent_t done_;
  std::function<std::shared_ptr<void>()> guard_;
};

}  // namespace

NcclCommunicator::NcclCommunicator(const ncclUniqueId& id, int rank, int size, std::string name,
                                   cudaStream_t compute, NcclWatch watch)
    : name_(std::move(name)), compute_(compute), watch_(std::move(watch)) {
  MOE_NCCL_CHECK(ncclCommInitRank(&comm_, size, id, rank));
  init_resources();
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, std::string name, cudaStream_t compute, NcclWatch watch)
    : comm_(comm), name_(std::move(name)), compute_(compute), watch_(std::move(watch)) {
  init_resources();
}

void NcclCommunicator::init_resources() {
  MOE_NCCL_CHECK(ncclCommUserRank(comm_, &rank_));
  MOE_NCCL_CHECK(ncclCommCount(comm_, &size_));
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MOE_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  MOE_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)));
}

NcclCommunicator::~NcclCommunicator() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (comm_) ncclCommDestroy(comm_);
  if (scratch_) cudaFree(scratch_);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
}

void NcclCommunicator::begin() {
  MOE_CUDA_CHECK(cudaEventRecord(ready_, compute_));
  MOE_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
}

void NcclCommunicator::finish(const char* op) {
  const std::shared_ptr<void> watched = watch_.guard ? watch_.guard(name_, op) : nullptr;
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

RequestPtr NcclCommunicator::request(const char* op) {
  cudaEvent_t done = nullptr;
  MOE_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  MOE_CUDA_CHECK(cudaEventRecord(done, stream_));
  std::function<std::shared_ptr<void>()> guard;
  if (watch_.guard) guard = [g = watch_.guard, name = name_, op] { return g(name, op); };
  return std::make_unique<NcclRequest>(done, std::move(guard));
}

void NcclCommunicator::barrier() {
  begin();
  MOE_NCCL_CHECK(ncclAllReduce(scratch_, scratch_, 1, ncclFloat, ncclSum, comm_, stream_));
  finish("barrier");
}

void NcclCommunicator::allreduce(void* data, int64_t n, ncclDataType_t type, ncclRedOp_t op) {
  begin();
  MOE_NCCL_CHECK(ncclAllReduce(data, data, count(n), type, op, comm_, stream_));
  finish("all_reduce");
}

void NcclCommunicator::allreduce_sum(float* data, int64_t n) { allreduce(data, n, ncclFloat, ncclSum); }
void NcclCommunicator::allreduce_sum(double* data, int64_t n) { allreduce(data, n, ncclDouble, ncclSum); }
void NcclCommunicator::allreduce_sum(int64_t* data, int64_t n) { allreduce(data, n, ncclInt64, ncclSum); }
void NcclCommunicator::allreduce_max(double* data, int64_t n) { allreduce(data, n, ncclDouble, ncclMax); }

void NcclCommunicator::reduce_scatter_sum(const float* send, float* recv, int64_t recv_n) {
  begin();
  MOE_NCCL_CHECK(ncclReduceScatter(send, recv, count(recv_n), ncclFloat, ncclSum, comm_, stream_));
  finish("reduce_scatter");
}

void NcclCommunicator::broadcast(void* data, int64_t bytes, int root) {
  begin();
  MOE_NCCL_CHECK(ncclBroadcast(data, data, count(bytes), ncclInt8, root, comm_, stream_));
  finish("broadcast");
}

void NcclCommunicator::allgather(const void* send, void* recv, int64_t bytes) {
  begin();
  MOE_NCCL_CHECK(ncclAllGather(send, recv, count(bytes), ncclInt8, comm_, stream_));
  finish("all_gather");
}

// All-gather-v as one broadcast per rank in a group (NCCL has no v-variant).
void NcclCommunicator::allgatherv(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes) {
  MOE_CUDA_REQUIRE(send_bytes == recv_bytes[rank_], "allgatherv: send_bytes differs from this rank's recv_bytes");
  const std::vector<int64_t> at = exclusive_prefix(recv_bytes, size_);
  begin();
  MOE_NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < size_; ++r) {
    if (recv_bytes[r] == 0) continue;
    char* dst = static_cast<char*>(recv) + at[size_t(r)];
    MOE_NCCL_CHECK(ncclBroadcast(r == rank_ ? send : dst, dst, count(recv_bytes[r]), ncclInt8, r, comm_, stream_));
  }
  MOE_NCCL_CHECK(ncclGroupEnd());
  finish("all_gather_v");
}

std::vector<std::string> NcclCommunicator::allgather_string(const std::string& s) {
  int64_t* lengths = nullptr;
  MOE_CUDA_CHECK(cudaMalloc(&lengths, sizeof(int64_t) * size_t(size_ + 1)));
  std::vector<int64_t> host(size_t(size_) + 1, 0);
  host[size_t(size_)] = int64_t(s.size());
  MOE_CUDA_CHECK(cudaMemcpy(lengths + size_, &host[size_t(size_)], sizeof(int64_t), cudaMemcpyHostToDevice));
  allgather(lengths + size_, lengths, sizeof(int64_t));
  MOE_CUDA_CHECK(cudaMemcpy(host.data(), lengths, sizeof(int64_t) * size_t(size_), cudaMemcpyDeviceToHost));
  MOE_CUDA_CHECK(cudaFree(lengths));
  const std::vector<int64_t> at = exclusive_prefix(host.data(), size_);
  char* buf = nullptr;
  MOE_CUDA_CHECK(cudaMalloc(&buf, size_t(at[size_t(size_)] + int64_t(s.size()) + 1)));
  char* mine = buf + at[size_t(size_)];
  MOE_CUDA_CHECK(cudaMemcpy(mine, s.data(), s.size(), cudaMemcpyHostToDevice));
  allgatherv(mine, int64_t(s.size()), buf, host.data());
  std::string all(size_t(at[size_t(size_)]), '\0');
  MOE_CUDA_CHECK(cudaMemcpy(all.data(), buf, all.size(), cudaMemcpyDeviceToHost));
  MOE_CUDA_CHECK(cudaFree(buf));
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r) out.push_back(all.substr(size_t(at[size_t(r)]), size_t(host[size_t(r)])));
  return out;
}

void NcclCommunicator::enqueue_alltoallv(const void* send, const int64_t* send_bytes, void* recv,
                                         const int64_t* recv_bytes) {
  const std::vector<int64_t> so = exclusive_prefix(send_bytes, size_), ro = exclusive_prefix(recv_bytes, size_);
  MOE_NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < size_; ++r) {
    if (send_bytes[r] > 0)
      MOE_NCCL_CHECK(ncclSend(static_cast<const char*>(send) + so[size_t(r)], count(send_bytes[r]), ncclInt8, r, comm_,
                              stream_));
    if (recv_bytes[r] > 0)
      MOE_NCCL_CHECK(ncclRecv(static_cast<char*>(recv) + ro[size_t(r)], count(recv_bytes[r]), ncclInt8, r, comm_,
                              stream_));
  }
  MOE_NCCL_CHECK(ncclGroupEnd());
}

void NcclCommunicator::alltoall(const void* send, void* recv, int64_t bytes_per_rank) {
  const std::vector<int64_t> bytes(size_t(size_), bytes_per_rank);
  begin();
  enqueue_alltoallv(send, bytes.data(), recv, bytes.data());
  finish("all_to_all");
}

void NcclCommunicator::alltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) {
  begin();
  enqueue_alltoallv(send, send_bytes, recv, recv_bytes);
  finish("all_to_all_v");
}

void NcclCommunicator::send(const void* data, int64_t bytes, int peer, int /*tag*/) {
  begin();
  MOE_NCCL_CHECK(ncclSend(data, count(bytes), ncclInt8, peer, comm_, stream_));
  finish("send");
}

void NcclCommunicator::recv(void* data, int64_t bytes, int peer, int /*tag*/) {
  begin();
  MOE_NCCL_CHECK(ncclRecv(data, count(bytes), ncclInt8, peer, comm_, stream_));
  finish("recv");
}

RequestPtr NcclCommunicator::iallreduce_sum(float* data, int64_t n) {
  begin();
  MOE_NCCL_CHECK(ncclAllReduce(data, data, count(n), ncclFloat, ncclSum, comm_, stream_));
  return request("all_reduce");
}

RequestPtr NcclCommunicator::ireduce_scatter_sum(const float* send, float* recv, int64_t recv_n) {
  begin();
  MOE_NCCL_CHECK(ncclReduceScatter(send, recv, count(recv_n), ncclFloat, ncclSum, comm_, stream_));
  return request("reduce_scatter");
}

RequestPtr NcclCommunicator::iallgather(const void* send, void* recv, int64_t bytes) {
  begin();
  MOE_NCCL_CHECK(ncclAllGather(send, recv, count(bytes), ncclInt8, comm_, stream_));
  return request("all_gather");
}

RequestPtr NcclCommunicator::ialltoallv(const void* send, const int64_t* send_bytes, void* recv,
                                        const int64_t* recv_bytes) {
  begin();
  enqueue_alltoallv(send, send_bytes, recv, recv_bytes);
  return request("all_to_all_v");
}

RequestPtr NcclCommunicator::isend(const void* data, int64_t bytes, int peer, int /*tag*/) {
  begin();
  MOE_NCCL_CHECK(ncclSend(data, count(bytes), ncclInt8, peer, comm_, stream_));
  return request("send");
}

RequestPtr NcclCommunicator::irecv(void* data, int64_t bytes, int peer, int /*tag*/) {
  begin();
  MOE_NCCL_CHECK(ncclRecv(data, count(bytes), ncclInt8, peer, comm_, stream_));
  return request("recv");
}

std::shared_ptr<Communicator> NcclCommunicator::split(int color, int key, const std::string& name) {
  ncclComm_t child = nullptr;
  MOE_NCCL_CHECK(ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, nullptr));
  if (!child) return nullptr;
  return std::shared_ptr<NcclCommunicator>(new NcclCommunicator(child, name, compute_, watch_));
}

void NcclCommunicator::set_timeout(double seconds) {
  if (watch_.set_timeout) watch_.set_timeout(seconds);
}

std::shared_ptr<NcclCommunicator> make_nccl_communicator(Communicator& bootstrap, const std::string& name,
                                                         cudaStream_t compute, NcclWatch watch) {
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) MOE_NCCL_CHECK(ncclGetUniqueId(&id));
  bootstrap.broadcast(&id, sizeof(id), 0);
  return std::make_shared<NcclCommunicator>(id, bootstrap.rank(), bootstrap.size(), name, compute, std::move(watch));
}

}  // namespace moe::comm
