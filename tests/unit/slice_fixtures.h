// Helpers for tests that compare tensor-parallel slices with the unsplit model: a group of thread
// ranks, and the largest error of a slice's gradient against the unsplit gradient.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "src/comm/thread_communicator.h"
#include "src/model/params.h"

namespace moe::test {

// Runs body on n thread ranks of one group named `name`.
inline void on_ranks(int n, const std::function<void(comm::Communicator&)>& body, const std::string& name = "tp") {
  auto group = comm::make_thread_group(n, name);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(*group[size_t(r)]); });
  for (auto& t : threads) t.join();
}

struct SliceError {
  double err = 0;    // max |slice gradient - unsplit gradient at the same global element|
  double scale = 0;  // max |unsplit gradient| over the whole tensor
};

// p and g: this rank's parameter and its gradient slice; ref: the unsplit model's table and grads.
inline SliceError slice_grad_error(const ParamInfo& p, const float* g, const ParamTable& ref_table,
                                   const std::vector<float>& ref) {
  const ParamInfo& q = ref_table.params()[size_t(ref_table.index_of(p.name))];
  SliceError e;
  for (int64_t i = 0; i < q.numel; ++i) e.scale = std::max(e.scale, double(std::abs(ref[size_t(q.offset + i)])));
  for (int64_t i = 0; i < p.numel; ++i)
    e.err = std::max(e.err, double(std::abs(g[i] - ref[size_t(q.offset + global_index(p, i))])));
  return e;
}

}  // namespace moe::test
