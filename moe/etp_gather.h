// Expert tensor parallelism over ranks that hold different tokens (parallel.etp with tp 1: the
// etp group spans dp ranks). Each rank of the etp group holds a hidden-unit slice of the same
// local experts, so the rows every member dispatched to those experts are gathered to all members
// (all-gather-v), each computes its slice's partial output for all of them, and the partials are
// summed back onto the rows' owners (all-to-all-v, then a sum in rank order): Megatron's
// all-gather / reduce-scatter around the experts. Backward mirrors it: d(out) of every row is
// gathered, the partial d(in) summed back. docs/distributed.md, "Expert tensor parallelism".
#pragma once
#include <cstdint>
#include <vector>

#include "src/comm/communicator.h"

namespace moe {

class EtpGather {
 public:
  // Collective over etp: learns every member's rows per local expert (offsets: E_local + 1 entries,
  // this rank's rows grouped by expert) and lays out the gathered rows expert-major (within an
  // expert, members in rank order).
  void plan(comm::Communicator& etp, const std::vector<int64_t>& offsets);
  // This rank's rows (M, D) -> every member's rows (M_all, D), grouped per all_offsets().
  void gather(comm::Communicator& etp, const float* mine, int64_t D, std::vector<float>& all);
  // Partial values of all rows (M_all, D) -> this rank's rows (M, D), summed over the members.
  void scatter_sum(comm::Communicator& etp, const float* all, int64_t D, std::vector<float>& mine);
  const std::vector<int64_t>& all_offsets() const { return all_offsets_; }
  int64_t rows() const { return mine_rows_; }

 private:
  int64_t experts_ = 0, mine_rows_ = 0;
  std::vector<int64_t> counts_;       // [member * experts + e]: rows of member for local expert e
  std::vector<int64_t> member_rows_;  // rows per member
  std::vector<int64_t> all_offsets_;  // experts + 1: expert-major layout of the gathered rows
  std::vector<float> staging_;        // member-major rows
  std::vector<int64_t> send_bytes_, recv_bytes_;
};

}  // namespace moe
