// The communication interface. Only src/comm talks to MPI (and, with the CUDA backend, NCCL);
// everything else receives a Communicator for an explicit group.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moe::comm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;  // group name for messages ("world", "dp", ...)
  virtual void barrier() = 0;
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  virtual void allreduce_max(double* data, int64_t n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual std::vector<std::string> allgather_string(const std::string& s) = 0;
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
  int local_size_ = 1;
};

// Aborts every rank of the job (after printing `why`); used when one rank fails alone.
[[noreturn]] void abort_job(const std::string& why, int exit_code);

}  // namespace moe::comm
