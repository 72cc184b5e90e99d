// Alpha-beta cost of collectives (docs/planning.md, "Communication"): a message of b bytes over a
// link costs latency + b / bandwidth; ring algorithms move the classic fractions of the buffer.
#pragma once
#include <cstdint>

#include "src/plan/hardware.h"

namespace moe::plan {

// The link a group uses: groups whose ranks span at most one node (`span` consecutive ranks,
// aligned to the node) use the intra-node link, others are bound by the inter-node link.
Link link_for_span(const Hardware& hw, int64_t span);

// `bytes` is each rank's full buffer; n ranks in the group. All return 0 for n == 1.
double allreduce_time(double bytes, int64_t n, const Link& l);       // ring: 2(n-1) steps, 2(n-1)/n of bytes
double reduce_scatter_time(double bytes, int64_t n, const Link& l);  // (n-1) steps, (n-1)/n of bytes
double allgather_time(double bytes, int64_t n, const Link& l);       // same volume as reduce-scatter
double alltoall_time(double bytes, int64_t n, const Link& l);        // (n-1)/n of bytes leave the rank
double p2p_time(double bytes, const Link& l);

}  // namespace moe::plan
