// Byte-level BPE: the pre-tokenizer that cuts text into chunks (merges never cross a chunk), the
// greedy merge trainer, and the rank-ordered encoder of one chunk.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moe::data {

using Merge = std::pair<int32_t, int32_t>;

inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

// Calls fn(chunk) for consecutive chunks whose concatenation is `text` (rules in
// docs/data-format.md: words with one leading space, punctuation runs, whitespace runs; at most
// kMaxChunk bytes).
constexpr size_t kMaxChunk = 64;
void for_each_chunk(std::string_view text, const std::function<void(std::string_view)>& fn);

// Learns up to `num_merges` merges from chunk frequencies. Each step merges the most frequent
// adjacent pair; ties go to the smaller (left id, right id). Merge r creates id first_id + r.
std::vector<Merge> train_bpe(const std::unordered_map<std::string, int64_t>& chunk_counts, int64_t num_merges,
                             int32_t first_id);

// Encodes one chunk: bytes, then merges applied in rank order (lowest rank first).
void encode_chunk(std::string_view chunk, const std::unordered_map<uint64_t, int32_t>& rank, int32_t first_id,
                  std::vector<int32_t>& out);

}  // namespace moe::data
