// ZeRO stages 1 and 2 under train.precision bf16 | fp16 with sharded fp32 master weights
// (docs/distributed.md, "Sharded master weights"): each rank rounds its owned ranges of the master
// into the compute copy, and the copy, not the master, is all-gathered. The copy holds half values
// widened to fp32, so each one travels as its 16-bit code: a bucket's all-gather moves 2 bytes per
// float instead of 4. The tensors the copy keeps exact (norm weights, router weight and bias) travel
// as fp32 after the codes of the same chunk (an all-gather-v: ranks own different numbers of them).
// The tail of a bucket (< group size floats, the last rank's) is broadcast as fp32, as in
// ZeroPartition::gather. Decoding a code gives back the copy's float bit for bit.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/precision.h"
#include "src/parallel/zero.h"

namespace moe {

class HalfGather {
 public:
  // exact: float ranges [begin, end) of the flat buffer whose copy holds fp32 values; every other
  // float of a bucket holds a bf16 or fp16 value (prec) widened to fp32.
  HalfGather(const ZeroPartition& part, const std::vector<std::pair<int64_t, int64_t>>& exact, Precision prec);
  // Collective over the dp and edp groups: every rank's owned ranges of `copy` (the flat compute
  // copy) land in every rank's `copy`.
  void gather(float* copy);
  // Bytes one gather receives on this rank (codes, exact floats and tails), and what the same
  // gather of fp32 values would receive (ZeroPartition::gather).
  int64_t gathered_bytes() const { return gathered_bytes_; }
  int64_t fp32_bytes() const { return fp32_bytes_; }
  // Staging (send and receive buffers), in bytes.
  int64_t staging_bytes() const { return int64_t((send_.capacity() + recv_.capacity()) * sizeof(uint16_t)); }

 private:
  struct Piece {
    int64_t at = 0, n = 0;  // exact floats [at, at + n) relative to the chunk's first float
  };
  struct Plan {
    std::vector<std::vector<Piece>> exact;  // per group rank: its chunk's exact pieces
    std::vector<int64_t> recv_bytes;        // per group rank: 2 chunk + 4 (exact floats)
  };
  void pack(const float* chunk, int64_t q, const std::vector<Piece>& exact, uint16_t* out) const;
  void unpack(const uint16_t* in, int64_t q, const std::vector<Piece>& exact, float* chunk) const;

  const ZeroPartition& part_;
  Precision prec_;
  std::vector<Plan> plans_;  // per bucket
  std::vector<uint16_t> send_, recv_;
  int64_t gathered_bytes_ = 0, fp32_bytes_ = 0;
};

}  // namespace moe
