// Writes RUN_DIR/load_balance.h5 on rank 0: per recorded step x MoE layer x expert routing counts,
// balance figures, phase times and the all-to-all byte matrix (schema: docs/profile-format.md).
// Rows are buffered and appended to extendible chunked datasets every kFlushRows rows, so memory
// stays bounded and a crash loses at most that many rows.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/load_stats.h"

namespace moe {

struct PhaseTimes {
  double attention = 0, route = 0, dispatch = 0, experts = 0, combine = 0, optimizer = 0, comm_wait = 0,
         step = 0;  // seconds in this step
};

class LoadBalanceRecorder {
 public:
  static constexpr int64_t kFlushRows = 64;

  // path = RUN_DIR/load_balance.h5; moe_layers = indices of the MoE layers (e.g. {0,1}); E experts;
  // record steps that are multiples of `every`. Appends if the file exists (resumed run): rows with
  // a step later than resume_step are dropped first. DataError naming the file if it cannot be
  // created, is damaged, or was written for other moe_layers / num_experts.
  LoadBalanceRecorder(const std::string& path, std::vector<int64_t> moe_layers, int64_t num_experts,
                      int64_t every, int64_t resume_step);
  ~LoadBalanceRecorder();  // flushes and closes; a failure here is printed, not thrown
  LoadBalanceRecorder(const LoadBalanceRecorder&) = delete;
  LoadBalanceRecorder& operator=(const LoadBalanceRecorder&) = delete;

  // step = completed steps (1-based, as in metrics.jsonl); ignored unless step % every == 0.
  // layers: one entry per MoE layer, in moe_layers order. a2a_bytes: ep*ep bytes sent from rank
  // i to rank j (row-major), empty when ep == 1.
  void record(int64_t step, const std::vector<const LayerLoadStats*>& layers, const PhaseTimes& t,
              const std::vector<int64_t>& a2a_bytes);
  // Writes buffered rows and flushes the file to disk.
  void flush();
  // Rows in the file plus rows buffered.
  int64_t rows() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe
