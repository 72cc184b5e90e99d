// The sharded loader the trainer reads batches from, and the in-order reader of `moe eval`.
// Batch, window and shuffle definitions: docs/data-format.md.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace moe::data {

class ShardSet;

struct LoaderOptions {
  std::string path;                  // dataset folder (with manifest.json)
  int64_t seq_len = 0;               // T: each sequence has T+1 tokens (inputs and shifted targets)
  int64_t global_batch = 0;          // B: sequences per global batch (train.batch_size)
  int64_t dp_rank = 0, dp_size = 1;  // this rank reads rows [dp_rank*B/dp_size, (dp_rank+1)*B/dp_size)
  // With m > 1 the global batch is m global micro-batches of B/m rows, each split over dp: local
  // row j*(B/(m*dp)) + k is global row j*(B/m) + dp_rank*(B/(m*dp)) + k (m = 1: the line above).
  int64_t microbatches = 1;
  uint64_t seed = 0;
  int64_t model_vocab_size = 0;  // a token id >= this is a DataError naming the shard
  int64_t prefetch = 4;          // bounded queue depth; 0 = synchronous
};

// Position p of the permutation of [0, n) for `epoch`: Fisher-Yates driven by
// philox4x32(rng_key(seed, "data.shuffle"), epoch, i).
std::vector<uint32_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t n);

class ShardedLoader {
 public:
  // Validates manifest + shards (existence, dtype, sizes, checksums, vocab): DataError naming the
  // file. ConfigError for inconsistent options.
  explicit ShardedLoader(const LoaderOptions& opts);
  ~ShardedLoader();  // stops the prefetch thread cleanly
  ShardedLoader(const ShardedLoader&) = delete;
  ShardedLoader& operator=(const ShardedLoader&) = delete;

  // This rank's rows of the global batch of the next step, row-major [rows, T+1]; then advances.
  // An error on the prefetch thread is re-thrown here.
  void next(std::vector<int32_t>& tokens);
  int64_t step() const;  // index of the batch next() returns
  nlohmann::json state() const;  // for checkpoints; restore() of it resumes exactly
  void restore(const nlohmann::json& state);
  int64_t sequences_per_epoch() const { return num_windows_; }
  int64_t rows() const { return row_end_ - row_begin_; }

 private:
  void build(int64_t step, std::vector<int32_t>& tokens);
  int64_t global_row(int64_t i) const;  // of this rank's row i within the step's global batch
  const std::vector<uint32_t>& permutation(int64_t epoch);
  void start_worker();
  void stop_worker();
  void worker();

  LoaderOptions opts_;
  std::unique_ptr<ShardSet> shards_;
  int64_t num_windows_ = 0, row_begin_ = 0, row_end_ = 0;
  int64_t step_ = 0;  // next step handed to the caller
  // The permutations of the last two epochs used: a batch spans at most two.
  std::vector<std::pair<int64_t, std::vector<uint32_t>>> perms_;

  // Prefetch: the worker builds steps produce_step_, produce_step_+1, ... into queue_.
  mutable std::mutex mu_;
  std::condition_variable has_batch_, has_room_;
  std::deque<std::vector<int32_t>> queue_;
  std::vector<std::vector<int32_t>> spare_;  // the caller's previous buffers, for reuse
  int64_t produce_step_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// `moe eval`: sequence j is tokens[j*T : j*T+T+1] of the valid shards concatenated in manifest
// order.
class EvalReader {
 public:
  EvalReader(const std::string& path, int64_t seq_len, int64_t model_vocab_size);
  ~EvalReader();
  int64_t num_sequences() const;  // floor((valid_tokens - 1) / T), 0 when there are fewer than T+1
  void read(int64_t first_seq, int64_t count, int32_t* out) const;  // out: count*(T+1)

 private:
  std::string path_;
  int64_t seq_len_;
  std::unique_ptr<ShardSet> shards_;
};

}  // namespace moe::data
