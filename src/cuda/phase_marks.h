// Named CUDA events on a stream for a per-phase time breakdown of the device step: mark(name)
// starts phase `name` (ending the previous one); totals() waits for the stream and sums the gaps
// per name in order of first appearance. Off by default: mark() then costs nothing.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

namespace moe::gpu {

class PhaseMarks {
 public:
  ~PhaseMarks();
  void enable(bool on) { on_ = on; }
  void mark(const char* name, cudaStream_t s);
  // (phase, milliseconds) since the last totals(); forgets the marks.
  std::vector<std::pair<std::string, double>> totals();

 private:
  bool on_ = false;
  std::vector<cudaEvent_t> events_;
  std::vector<const char*> names_;
  size_t used_ = 0;
};

}  // namespace moe::gpu
