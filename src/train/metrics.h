// metrics.jsonl (one JSON object per logged step; keys in DESIGN.md) and the live progress line.
#pragma once
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace moe {

class MetricsWriter {
 public:
  // Appends to `path` (created if needed); an empty path disables writing (non-zero ranks).
  explicit MetricsWriter(const std::string& path);
  ~MetricsWriter();
  void write(const nlohmann::json& record);

 private:
  std::FILE* f_ = nullptr;
};

// "step 120/300 | loss 2.3456 | 18.2k tok/s | mfu 12.1% | ETA 0:41"
std::string progress_line(int64_t step, int64_t steps, double loss, double tokens_per_s, double mfu,
                          double eta_s, const std::string& extra);

}  // namespace moe
