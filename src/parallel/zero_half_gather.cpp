#include "src/parallel/zero_half_gather.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/half.h"
#include "src/comm/communicator.h"
#include "src/core/error.h"

namespace moe {

HalfGather::HalfGather(const ZeroPartition& part, const std::vector<std::pair<int64_t, int64_t>>& exact,
                       Precision prec)
    : part_(part), prec_(prec) {
  MOE_CHECK(prec != Precision::fp32, "HalfGather: the copy of an fp32 run is the master itself");
  std::vector<std::pair<int64_t, int64_t>> sorted = exact;
  std::sort(sorted.begin(), sorted.end());
  size_t send_max = 0, recv_max = 0;
  plans_.resize(part.ranges().size());
  for (const ZeroRange& z : part.ranges()) {
    const comm::Communicator& g = part.group(z.bucket);
    if (g.size() == 1) continue;  // nothing to gather
    Plan& plan = plans_[size_t(z.bucket)];
    const int64_t first = part.bucket(z.bucket).begin;
    int64_t all = 0;
    for (int s = 0; s < g.size(); ++s) {
      const int64_t lo = first + s * z.chunk, hi = lo + z.chunk;
      std::vector<Piece> pieces;
      int64_t n_exact = 0;
      for (const auto& [a, b] : sorted) {
        const int64_t from = std::max(a, lo), to = std::min(b, hi);
        if (from >= to) continue;
        pieces.push_back({from - lo, to - from});
        n_exact += to - from;
      }
      plan.exact.push_back(std::move(pieces));
      plan.recv_bytes.push_back(2 * z.chunk + 4 * n_exact);
      send_max = std::max(send_max, size_t(z.chunk + 2 * n_exact));
      all += z.chunk + 2 * n_exact;
    }
    recv_max = std::max(recv_max, size_t(all));
    gathered_bytes_ += 2 * all + 4 * z.tail;
    fp32_bytes_ += 4 * (z.chunk * g.size() + z.tail);
  }
  send_.resize(send_max);
  recv_.resize(recv_max);
}

void HalfGather::pack(const float* chunk, int64_t q, const std::vector<Piece>& exact, uint16_t* out) const {
  // The copy's values are exactly representable, so this rounding is the identity on them.
  if (prec_ == Precision::bf16) half::fp32_to_bf16(out, chunk, q);
  else half::fp32_to_fp16(out, chunk, q);
  uint16_t* tail = out + q;
  for (const Piece& p : exact) {
    std::memcpy(tail, chunk + p.at, size_t(p.n) * sizeof(float));
    tail += 2 * p.n;
  }
}

void HalfGather::unpack(const uint16_t* in, int64_t q, const std::vector<Piece>& exact, float* chunk) const {
  if (prec_ == Precision::bf16) half::bf16_to_fp32(chunk, in, q);
  else half::fp16_to_fp32(chunk, in, q);
  const uint16_t* tail = in + q;
  for (const Piece& p : exact) {  // the exact floats replace their (rounded) codes
    std::memcpy(chunk + p.at, tail, size_t(p.n) * sizeof(float));
    tail += 2 * p.n;
  }
}

void HalfGather::gather(float* copy) {
  for (const ZeroRange& z : part_.ranges()) {
    comm::Communicator& g = part_.group(z.bucket);
    if (g.size() == 1) continue;
    const Plan& plan = plans_[size_t(z.bucket)];
    float* base = copy + part_.bucket(z.bucket).begin;
    const int mine = g.rank();
    if (z.chunk > 0) {
      pack(base + mine * z.chunk, z.chunk, plan.exact[size_t(mine)], send_.data());
      g.allgatherv(send_.data(), plan.recv_bytes[size_t(mine)], recv_.data(), plan.recv_bytes.data());
      int64_t at = 0;  // in uint16 units: every block is an even number of bytes
      for (int s = 0; s < g.size(); ++s) {
        if (s != mine) unpack(recv_.data() + at, z.chunk, plan.exact[size_t(s)], base + s * z.chunk);
        at += plan.recv_bytes[size_t(s)] / 2;
      }
    }
    if (z.tail > 0) g.broadcast(base + z.chunk * g.size(), z.tail * int64_t(sizeof(float)), g.size() - 1);
  }
}

}  // namespace moe
