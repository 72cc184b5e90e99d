#include "src/cuda/phase_marks.h"

#include <cstring>

#include "kernels/cuda/cuda_check.h"

namespace moe::gpu {

PhaseMarks::~PhaseMarks() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

void PhaseMarks::mark(const char* name, cudaStream_t s) {
  if (!on_) return;
  if (used_ == events_.size()) {
    cudaEvent_t e;
    MOE_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
    names_.push_back(name);
  }
  names_[used_] = name;
  MOE_CUDA_CHECK(cudaEventRecord(events_[used_], s));
  ++used_;
}

std::vector<std::pair<std::string, double>> PhaseMarks::totals() {
  std::vector<std::pair<std::string, double>> out;
  if (used_ > 0) MOE_CUDA_CHECK(cudaEventSynchronize(events_[used_ - 1]));
  for (size_t i = 0; i + 1 < used_; ++i) {
    float ms = 0;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    size_t j = 0;
    while (j < out.size() && out[j].first != names_[i]) ++j;
    if (j == out.size()) out.emplace_back(names_[i], 0.0);
    out[j].second += ms;
  }
  used_ = 0;
  return out;
}

}  // namespace moe::gpu
