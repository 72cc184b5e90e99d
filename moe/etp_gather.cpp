#include "moe/etp_gather.h"

#include <algorithm>

#include "src/core/error.h"

namespace moe {

void EtpGather::plan(comm::Communicator& etp, const std::vector<int64_t>& offsets) {
  const int n = etp.size();
  experts_ = int64_t(offsets.size()) - 1;
  mine_rows_ = offsets.back();
  std::vector<int64_t> mine(static_cast<size_t>(experts_));
  for (int64_t e = 0; e < experts_; ++e) mine[size_t(e)] = offsets[size_t(e + 1)] - offsets[size_t(e)];
  counts_.assign(size_t(n * experts_), 0);
  etp.allgather(mine.data(), counts_.data(), int64_t(sizeof(int64_t)) * experts_);
  member_rows_.assign(size_t(n), 0);
  all_offsets_.assign(size_t(experts_ + 1), 0);
  for (int r = 0; r < n; ++r)
    for (int64_t e = 0; e < experts_; ++e) {
      const int64_t c = counts_[size_t(r * experts_ + e)];
      member_rows_[size_t(r)] += c;
      all_offsets_[size_t(e + 1)] += c;
    }
  for (int64_t e = 0; e < experts_; ++e) all_offsets_[size_t(e + 1)] += all_offsets_[size_t(e)];
  MOE_CHECK(member_rows_[size_t(etp.rank())] == mine_rows_, "EtpGather: the gathered counts disagree");
}

namespace {

// Calls f(member, expert, member-major row, expert-major row, rows) for every (member, expert)
// block: member-major = members in rank order, each its rows by expert; expert-major = experts
// in order, each its members' rows in rank order.
template <class F>
void for_blocks(int n, int64_t experts, const std::vector<int64_t>& counts, const std::vector<int64_t>& all_offsets,
                F f) {
  std::vector<int64_t> at(all_offsets.begin(), all_offsets.end() - 1);  // next row per expert
  int64_t member_row = 0;
  for (int r = 0; r < n; ++r)
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t c = counts[size_t(r * experts + e)];
      f(r, e, member_row, at[size_t(e)], c);
      member_row += c;
      at[size_t(e)] += c;
    }
}

}  // namespace

void EtpGather::gather(comm::Communicator& etp, const float* mine, int64_t D, std::vector<float>& all) {
  const int n = etp.size();
  const int64_t row_bytes = D * int64_t(sizeof(float));
  recv_bytes_.resize(size_t(n));
  for (int r = 0; r < n; ++r) recv_bytes_[size_t(r)] = member_rows_[size_t(r)] * row_bytes;
  staging_.resize(size_t(all_offsets_.back() * D));
  etp.allgatherv(mine, mine_rows_ * row_bytes, staging_.data(), recv_bytes_.data());
  all.resize(staging_.size());
  for_blocks(n, experts_, counts_, all_offsets_, [&](int, int64_t, int64_t src, int64_t dst, int64_t c) {
    std::copy_n(staging_.data() + src * D, c * D, all.data() + dst * D);
  });
}

void EtpGather::scatter_sum(comm::Communicator& etp, const float* all, int64_t D, std::vector<float>& mine) {
  const int n = etp.size();
  const int64_t row_bytes = D * int64_t(sizeof(float));
  staging_.resize(size_t(all_offsets_.back() * D));
  for_blocks(n, experts_, counts_, all_offsets_, [&](int, int64_t, int64_t dst, int64_t src, int64_t c) {
    std::copy_n(all + src * D, c * D, staging_.data() + dst * D);
  });
  send_bytes_.resize(size_t(n));
  recv_bytes_.assign(size_t(n), mine_rows_ * row_bytes);
  for (int r = 0; r < n; ++r) send_bytes_[size_t(r)] = member_rows_[size_t(r)] * row_bytes;
  std::vector<float> parts(size_t(n * mine_rows_ * D));
  etp.alltoallv(staging_.data(), send_bytes_.data(), parts.data(), recv_bytes_.data());
  // The members' partials of each of my rows, summed in rank order (the same order on every run).
  mine.assign(size_t(mine_rows_ * D), 0.0f);
  for (int r = 0; r < n; ++r) {
    const float* p = parts.data() + size_t(r) * size_t(mine_rows_ * D);
    for (size_t i = 0; i < mine.size(); ++i) mine[i] += p[i];
  }
}

}  // namespace moe
