#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include "src/comm/communicator.h"
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

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::string name) : comm_(comm), name_(std::move(name)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  void barrier() override { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }
  void allreduce_sum(float* data, int64_t n) override {
    if (size_ > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, int(n), MPI_FLOAT, MPI_SUM, comm_), "MPI_Allreduce");
  }
  void allreduce_sum(double* data, int64_t n) override {
    if (size_ > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, int(n), MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
  }
  void allreduce_max(double* data, int64_t n) override {
    if (size_ > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, int(n), MPI_DOUBLE, MPI_MAX, comm_), "MPI_Allreduce");
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    if (size_ > 1) check_mpi(MPI_Bcast(data, int(bytes), MPI_BYTE, root, comm_), "MPI_Bcast");
  }
  std::vector<std::string> allgather_string(const std::string& s) override {
    int len = int(s.size());
    std::vector<int> lens(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_), 0);
    check_mpi(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_), "MPI_Allgather");
    int total = 0;
    for (int i = 0; i < size_; ++i) {
      displs[size_t(i)] = total;
      total += lens[size_t(i)];
    }
    std::string all(size_t(total), '\0');
    check_mpi(MPI_Allgatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, comm_),
              "MPI_Allgatherv");
    std::vector<std::string> out;
    for (int i = 0; i < size_; ++i) out.push_back(all.substr(size_t(displs[size_t(i)]), size_t(lens[size_t(i)])));
    return out;
  }

 private:
  MPI_Comm comm_;
  std::string name_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

Runtime::Runtime(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(argc, argv);
  // Errors come back as return codes, so they become exceptions with a message.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  world_ = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, "world");
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

Runtime::~Runtime() {
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
