#include "src/train/metrics.h"

#include <cmath>

#include "src/core/error.h"

namespace moe {

MetricsWriter::MetricsWriter(const std::string& path) {
  if (path.empty()) return;
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw DataError("cannot open " + path + " for writing: check the run directory's permissions");
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::write(const nlohmann::json& record) {
  if (!f_) return;
  std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    throw DataError("cannot write metrics.jsonl (disk full?)");
}

std::string progress_line(int64_t step, int64_t steps, double loss, double tokens_per_s, double mfu, double eta_s,
                          const std::string& extra) {
  char buf[256];
  const int eta = std::isfinite(eta_s) && eta_s > 0 ? int(eta_s + 0.5) : 0;
  std::snprintf(buf, sizeof(buf), "step %lld/%lld | loss %.4f | %.1fk tok/s | mfu %.1f%% | ETA %d:%02d%s",
                (long long)step, (long long)steps, loss, tokens_per_s / 1000.0, 100.0 * mfu, eta / 60, eta % 60,
                extra.c_str());
  return buf;
}

}  // namespace moe
