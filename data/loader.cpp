#include "data/loader.h"

#include <algorithm>

#include "data/manifest.h"
#include "data/shard_set.h"
#include "src/core/error.h"
#include "src/core/philox.h"

namespace moe::data {

std::vector<uint32_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t n) {
  MOE_CHECK(n >= 0 && n <= int64_t(UINT32_MAX), "window count out of range");
  std::vector<uint32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = uint32_t(i);
  const uint64_t key = rng_key(seed, "data.shuffle");
  for (int64_t i = n - 1; i > 0; --i) {
    Philox4x32 r = philox4x32(key, uint64_t(epoch), uint64_t(i));
    uint64_t x = (uint64_t(r.v[0]) << 32) | r.v[1];
    std::swap(p[size_t(i)], p[size_t(x % uint64_t(i + 1))]);
  }
  return p;
}

namespace {

void check_options(const LoaderOptions& o) {
  auto bad = [](const std::string& what) { throw ConfigError("data loader: " + what); };
  if (o.seq_len < 1) bad("model.seq_len must be at least 1");
  if (o.global_batch < 1) bad("train.batch_size must be at least 1");
  if (o.dp_size < 1 || o.dp_rank < 0 || o.dp_rank >= o.dp_size)
    bad("dp_rank " + std::to_string(o.dp_rank) + " is outside [0, dp_size=" + std::to_string(o.dp_size) + ")");
  if (o.model_vocab_size < 1) bad("model.vocab_size must be at least 1");
  if (o.prefetch < 0) bad("prefetch depth must be >= 0");
  if (o.microbatches < 1 || (o.microbatches > 1 && o.global_batch % (o.dp_size * o.microbatches) != 0))
    bad("train.batch_size " + std::to_string(o.global_batch) + " is not divisible by dp * microbatches = " +
        std::to_string(o.dp_size) + " * " + std::to_string(o.microbatches));
}

}  // namespace

ShardedLoader::ShardedLoader(const LoaderOptions& opts) : opts_(opts) {
  check_options(opts_);
  Manifest m = Manifest::load(opts_.path);
  shards_ = std::make_unique<ShardSet>(opts_.path, m, "train", opts_.model_vocab_size);
  const int64_t tokens = shards_->num_tokens(), T = opts_.seq_len;
  num_windows_ = tokens > 0 ? (tokens - 1) / T : 0;
  if (num_windows_ < 1)
    throw DataError(manifest_path(opts_.path) + ": the train split has " + std::to_string(tokens) +
                    " tokens, fewer than seq_len+1 = " + std::to_string(T + 1) + "; add data or lower model.seq_len");
  if (num_windows_ > int64_t(UINT32_MAX))
    throw DataError(manifest_path(opts_.path) + ": the train split has more than 2^32 windows of seq_len " +
                    std::to_string(T) + "; raise model.seq_len or split the dataset");
  row_begin_ = opts_.dp_rank * opts_.global_batch / opts_.dp_size;
  row_end_ = (opts_.dp_rank + 1) * opts_.global_batch / opts_.dp_size;
  if (opts_.prefetch > 0) start_worker();
}

ShardedLoader::~ShardedLoader() { stop_worker(); }

const std::vector<uint32_t>& ShardedLoader::permutation(int64_t epoch) {
  for (const auto& [e, p] : perms_)
    if (e == epoch) return p;
  if (perms_.size() == 2) perms_.erase(perms_.begin());
  perms_.emplace_back(epoch, epoch_permutation(opts_.seed, epoch, num_windows_));
  return perms_.back().second;
}

int64_t ShardedLoader::global_row(int64_t i) const {
  const int64_t m = opts_.microbatches, per = (row_end_ - row_begin_) / m;  // rows per local micro-batch
  if (m == 1) return row_begin_ + i;
  return (i / per) * (opts_.global_batch / m) + opts_.dp_rank * per + i % per;
}

void ShardedLoader::build(int64_t step, std::vector<int32_t>& tokens) {
  const int64_t T = opts_.seq_len, rows = row_end_ - row_begin_;
  tokens.resize(size_t(rows * (T + 1)));
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t g = step * opts_.global_batch + global_row(i);
    const int64_t window = permutation(g / num_windows_)[size_t(g % num_windows_)];
    shards_->read(window * T, T + 1, tokens.data() + i * (T + 1));
  }
}

void ShardedLoader::start_worker() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = false;
  error_ = nullptr;
  queue_.clear();
  produce_step_ = step_;
  thread_ = std::thread(&ShardedLoader::worker, this);
}

void ShardedLoader::stop_worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  has_room_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  queue_.clear();
}

void ShardedLoader::worker() {
  std::vector<int32_t> buf;
  for (;;) {
    int64_t s;
    {
      std::unique_lock<std::mutex> lock(mu_);
      has_room_.wait(lock, [&] { return stop_ || int64_t(queue_.size()) < opts_.prefetch; });
      if (stop_) return;
      s = produce_step_++;
      if (!spare_.empty()) {  // reuse a buffer the caller gave back: no allocation per batch
        buf = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    try {
      build(s, buf);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      has_batch_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      queue_.push_back(std::move(buf));
      buf = {};
    }
    has_batch_.notify_one();
  }
}

void ShardedLoader::next(std::vector<int32_t>& tokens) {
  if (opts_.prefetch == 0) {
    build(step_, tokens);
    ++step_;
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  has_batch_.wait(lock, [&] { return !queue_.empty() || error_; });
  if (queue_.empty()) std::rethrow_exception(error_);  // batches made before the error come first
  tokens.swap(queue_.front());
  if (spare_.size() < 2) spare_.push_back(std::move(queue_.front()));
  queue_.pop_front();
  ++step_;
  lock.unlock();
  has_room_.notify_one();
}

int64_t ShardedLoader::step() const { return step_; }

nlohmann::json ShardedLoader::state() const {
  return {{"version", 1},          {"step", step_},
          {"seed", opts_.seed},    {"seq_len", opts_.seq_len},
          {"global_batch", opts_.global_batch}, {"num_windows", num_windows_}};
}

void ShardedLoader::restore(const nlohmann::json& s) {
  auto get = [&](const char* key) -> nlohmann::json {
    if (!s.is_object() || !s.contains(key) || !s[key].is_number_integer())
      throw DataError("data loader state: missing or non-integer key \"" + std::string(key) +
                      "\" (the checkpoint's loader state is corrupt)");
    return s[key];
  };
  int64_t step = get("step");
  if (get("seed").get<uint64_t>() != opts_.seed || get("seq_len").get<int64_t>() != opts_.seq_len ||
      get("global_batch").get<int64_t>() != opts_.global_batch)
    throw ConfigError("data loader state was saved with seed/seq_len/batch_size " + s["seed"].dump() + "/" +
                      s["seq_len"].dump() + "/" + s["global_batch"].dump() + " but the run uses " +
                      std::to_string(opts_.seed) + "/" + std::to_string(opts_.seq_len) + "/" +
                      std::to_string(opts_.global_batch) + "; resume with the same train.seed, model.seq_len and "
                      "train.batch_size");
  if (get("num_windows").get<int64_t>() != num_windows_)
    throw DataError(manifest_path(opts_.path) + ": the dataset differs from the one the checkpoint was trained on (" +
                    s["num_windows"].dump() + " windows then, " + std::to_string(num_windows_) + " now)");
  if (step < 0) throw DataError("data loader state: negative step");
  stop_worker();
  step_ = step;
  if (opts_.prefetch > 0) start_worker();
}

EvalReader::EvalReader(const std::string& path, int64_t seq_len, int64_t model_vocab_size)
    : path_(path), seq_len_(seq_len) {
  if (seq_len < 1) throw ConfigError("eval: model.seq_len must be at least 1");
  Manifest m = Manifest::load(path);
  shards_ = std::make_unique<ShardSet>(path, m, "valid", model_vocab_size);
}

EvalReader::~EvalReader() = default;

int64_t EvalReader::num_sequences() const {
  int64_t tokens = shards_->num_tokens();
  return tokens > 0 ? (tokens - 1) / seq_len_ : 0;
}

void EvalReader::read(int64_t first_seq, int64_t count, int32_t* out) const {
  MOE_CHECK(first_seq >= 0 && count >= 0 && first_seq + count <= num_sequences(), "eval sequence range");
  for (int64_t j = 0; j < count; ++j)
    shards_->read((first_seq + j) * seq_len_, seq_len_ + 1, out + j * (seq_len_ + 1));
}

}  // namespace moe::data
