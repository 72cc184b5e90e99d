#include "src/plan/collectives.h"

namespace moe::plan {

Link link_for_span(const Hardware& hw, int64_t span) {
  const bool intra = span <= hw.devices_per_node && hw.devices_per_node % span == 0;
  return intra ? hw.intra_node : hw.inter_node;
}

double allreduce_time(double bytes, int64_t n, const Link& l) {
  if (n <= 1) return 0;
  const double k = double(n - 1);
  return 2 * k * l.latency + 2 * k / double(n) * bytes / l.bandwidth;
}

double reduce_scatter_time(double bytes, int64_t n, const Link& l) {
  if (n <= 1) return 0;
  const double k = double(n - 1);
  return k * l.latency + k / double(n) * bytes / l.bandwidth;
}

double allgather_time(double bytes, int64_t n, const Link& l) { return reduce_scatter_time(bytes, n, l); }

double alltoall_time(double bytes, int64_t n, const Link& l) {
  if (n <= 1) return 0;
  const double k = double(n - 1);
  return k * l.latency + k / double(n) * bytes / l.bandwidth;
}

double p2p_time(double bytes, const Link& l) { return l.latency + bytes / l.bandwidth; }

}  // namespace moe::plan
