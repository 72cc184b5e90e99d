// The MPI implementation of Communicator on CPU buffers. Every call is watched by the process's
// Watchdog (parallel.timeout_s); non-blocking calls are watched while their wait() blocks.
#include <mpi.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "src/comm/communicator.h"
#include "src/comm/mpi_peer_probe.h"
#include "src/comm/watchdog.h"
#include "src/core/error.h"

namespace moe::comm {

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(kExitOther, std::string("MPI call ") + what + " failed: " + std::string(msg, size_t(len)));
}

int to_int(int64_t n, const char* what) {
  MOE_CHECK(n >= 0 && n <= INT_MAX, std::string(what) + ": count " + std::to_string(n) + " does not fit an MPI int");
  return int(n);
}

// Byte counts and their displacements as MPI ints.
struct Counts {
  std::vector<int> n, displ;
  Counts(const int64_t* bytes, int size, const char* what) : n(size_t(size)), displ(size_t(size)) {
    int64_t at = 0;
    for (int r = 0; r < size; ++r) {
      n[size_t(r)] = to_int(bytes[r], what);
      displ[size_t(r)] = to_int(at, what);
      at += bytes[r];
    }
  }
};

class MpiRequest final : public Request {
 public:
  MpiRequest(std::shared_ptr<Watchdog> wd, std::string group, const char* op)
      : wd_(std::move(wd)), group_(std::move(group)), op_(op) {}
  ~MpiRequest() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    Watchdog::Guard g(wd_.get(), group_, op_);
    check_mpi(MPI_Wait(&req_, MPI_STATUS_IGNORE), op_);
  }
  MPI_Request req_ = MPI_REQUEST_NULL;
  std::unique_ptr<Counts> send_counts_, recv_counts_;  // alive until the operation completes

 private:
  std::shared_ptr<Watchdog> wd_;
  std::string group_;
  const char* op_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::string name, std::shared_ptr<Watchdog> wd)
      : comm_(comm), name_(std::move(name)), wd_(std::move(wd)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_WORLD && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  void barrier() override {
    auto g = watch("barrier");
    check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
  }
  void allreduce_sum(float* data, int64_t n) override { allreduce(data, n, MPI_FLOAT, MPI_SUM); }
  void allreduce_sum(double* data, int64_t n) override { allreduce(data, n, MPI_DOUBLE, MPI_SUM); }
  void allreduce_sum(int64_t* data, int64_t n) override { allreduce(data, n, MPI_INT64_T, MPI_SUM); }
  void allreduce_max(double* data, int64_t n) override { allreduce(data, n, MPI_DOUBLE, MPI_MAX); }
  void reduce_scatter_sum(const float* send, float* recv, int64_t recv_n) override {
    auto g = watch("reduce_scatter");
    check_mpi(MPI_Reduce_scatter_block(send, recv, to_int(recv_n, "reduce_scatter"), MPI_FLOAT, MPI_SUM, comm_),
              "MPI_Reduce_scatter_block");
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    if (size_ == 1) return;
    auto g = watch("broadcast");
    check_mpi(MPI_Bcast(data, to_int(bytes, "broadcast"), MPI_BYTE, root, comm_), "MPI_Bcast");
  }
  void allgather(const void* send, void* recv, int64_t bytes) override {
    auto g = watch("all_gather");
    const int n = to_int(bytes, "all_gather");
    check_mpi(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_), "MPI_Allgather");
  }
  void allgatherv(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes) override {
    auto g = watch("all_gather_v");
    Counts c(recv_bytes, size_, "all_gather_v");
    check_mpi(MPI_Allgatherv(send, to_int(send_bytes, "all_gather_v"), MPI_BYTE, recv, c.n.data(), c.displ.data(),
                             MPI_BYTE, comm_),
              "MPI_Allgatherv");
  }
  std::vector<std::string> allgather_string(const std::string& s) override {
    int64_t len = int64_t(s.size());
    std::vector<int64_t> lens(static_cast<size_t>(size_));
    allgather(&len, lens.data(), sizeof(int64_t));
    const std::vector<int64_t> at = exclusive_prefix(lens.data(), size_);
    std::string all(size_t(at.back()), '\0');
    allgatherv(s.data(), len, all.data(), lens.data());
    std::vector<std::string> out;
    for (int i = 0; i < size_; ++i) out.push_back(all.substr(size_t(at[size_t(i)]), size_t(lens[size_t(i)])));
    return out;
  }
  void alltoall(const void* send, void* recv, int64_t bytes_per_rank) override {
    auto g = watch("all_to_all");
    const int n = to_int(bytes_per_rank, "all_to_all");
    check_mpi(MPI_Alltoall(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_), "MPI_Alltoall");
  }
  void alltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override {
    auto g = watch("all_to_all_v");
    Counts s(send_bytes, size_, "all_to_all_v"), r(recv_bytes, size_, "all_to_all_v");
    check_mpi(MPI_Alltoallv(send, s.n.data(), s.displ.data(), MPI_BYTE, recv, r.n.data(), r.displ.data(), MPI_BYTE,
                            comm_),
              "MPI_Alltoallv");
  }
  void send(const void* data, int64_t bytes, int peer, int tag) override {
    auto g = watch("send");
    check_mpi(MPI_Send(data, to_int(bytes, "send"), MPI_BYTE, peer, tag, comm_), "MPI_Send");
  }
  void recv(void* data, int64_t bytes, int peer, int tag) override {
    auto g = watch("recv");
    check_mpi(MPI_Recv(data, to_int(bytes, "recv"), MPI_BYTE, peer, tag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
  }

  RequestPtr iallreduce_sum(float* data, int64_t n) override {
    auto r = request("all_reduce");
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, to_int(n, "all_reduce"), MPI_FLOAT, MPI_SUM, comm_, &r->req_),
              "MPI_Iallreduce");
    return r;
  }
  RequestPtr ireduce_scatter_sum(const float* send, float* recv, int64_t recv_n) override {
    auto r = request("reduce_scatter");
    check_mpi(MPI_Ireduce_scatter_block(send, recv, to_int(recv_n, "reduce_scatter"), MPI_FLOAT, MPI_SUM, comm_,
                                        &r->req_),
              "MPI_Ireduce_scatter_block");
    return r;
  }
  RequestPtr iallgather(const void* send, void* recv, int64_t bytes) override {
    auto r = request("all_gather");
    const int n = to_int(bytes, "all_gather");
    check_mpi(MPI_Iallgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_, &r->req_), "MPI_Iallgather");
    return r;
  }
  RequestPtr ialltoallv(const void* send, const int64_t* send_bytes, void* recv, const int64_t* recv_bytes) override {
    auto r = request("all_to_all_v");
    r->send_counts_ = std::make_unique<Counts>(send_bytes, size_, "all_to_all_v");
    r->recv_counts_ = std::make_unique<Counts>(recv_bytes, size_, "all_to_all_v");
    check_mpi(MPI_Ialltoallv(send, r->send_counts_->n.data(), r->send_counts_->displ.data(), MPI_BYTE, recv,
                             r->recv_counts_->n.data(), r->recv_counts_->displ.data(), MPI_BYTE, comm_, &r->req_),
              "MPI_Ialltoallv");
    return r;
  }
  RequestPtr isend(const void* data, int64_t bytes, int peer, int tag) override {
    auto r = request("send");
    check_mpi(MPI_Isend(data, to_int(bytes, "send"), MPI_BYTE, peer, tag, comm_, &r->req_), "MPI_Isend");
    return r;
  }
  RequestPtr irecv(void* data, int64_t bytes, int peer, int tag) override {
    auto r = request("recv");
    check_mpi(MPI_Irecv(data, to_int(bytes, "recv"), MPI_BYTE, peer, tag, comm_, &r->req_), "MPI_Irecv");
    return r;
  }

  std::shared_ptr<Communicator> split(int color, int key, const std::string& name) override {
    auto g = watch("split");
    MPI_Comm sub;
    check_mpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    return std::make_shared<MpiCommunicator>(sub, name, wd_);
  }
  void set_timeout(double seconds) override { wd_->set_timeout(seconds); }
  std::shared_ptr<void> watch(const std::string& group, const char* op) override {
    return std::make_shared<Watchdog::Guard>(wd_.get(), group, op);
  }

 private:
  Watchdog::Guard watch(const char* op) { return Watchdog::Guard(wd_.get(), name_, op); }
  std::unique_ptr<MpiRequest> request(const char* op) { return std::make_unique<MpiRequest>(wd_, name_, op); }
  void allreduce(void* data, int64_t n, MPI_Datatype type, MPI_Op op) {
    if (size_ == 1) return;
    auto g = watch("all_reduce");
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, to_int(n, "all_reduce"), type, op, comm_), "MPI_Allreduce");
  }

  MPI_Comm comm_;
  std::string name_;
  std::shared_ptr<Watchdog> wd_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

Runtime::Runtime(int* argc, char*** argv) {
  // Under mpirun, a rank must not outlive its launcher: if mpirun is killed (kill -9, a lost
  // node's daemon), the ranks die with it instead of training on as orphans.
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) std::_Exit(kExitOther);  // the launcher died before the call above
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  // The watchdog thread may call MPI_Abort while the main thread is inside a collective.
  int provided = 0;
  if (!initialized) MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  // Errors come back as return codes, so they become exceptions with a message.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  auto wd = std::make_shared<Watchdog>(world_rank, [](const std::string& msg) { abort_job(msg, kExitOther); });
  wd->set_probe(make_mpi_peer_probe());  // collective: every rank creates its probe here
  watchdog_ = wd;
  world_ = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, "world", wd);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

Runtime::~Runtime() {
  world_.reset();
  if (watchdog_) watchdog_->stop();  // its thread uses MPI (the peer probe)
  watchdog_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void abort_job(const std::string& why, int exit_code) {
  std::fprintf(stderr, "moe: %s\n", why.c_str());
  std::fflush(stderr);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

}  // namespace moe::comm
