// Loader throughput from the page cache: tokens/s handed to the trainer, with and without the
// prefetch thread. Usage: bench_loader [DATASET_DIR]  (default: prepares the fortunes corpus,
// or synthetic text when it is not installed, in a temporary folder).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/manifest.h"
#include "data/prepare.h"
#include "src/core/error.h"

namespace fs = std::filesystem;
using moe::data::LoaderOptions;
using moe::data::ShardedLoader;

namespace {

std::string prepare_default(const fs::path& tmp) {
  moe::data::PrepareOptions o;
  o.output = (tmp / "ds").string();
  o.progress = false;
  const char* fortunes = "/usr/share/games/fortunes";
  if (fs::is_directory(fortunes)) {
    o.inputs = {fortunes};
  } else {
    fs::create_directories(tmp / "in");
    std::ofstream out(tmp / "in" / "synthetic.txt");
    for (int i = 0; i < 200000; ++i) out << "synthetic document " << i << " for the loader benchmark\n%\n";
    o.inputs = {(tmp / "in").string()};
  }
  o.shard_tokens = 1 << 20;  // several shards, so windows cross files
  moe::data::prepare_dataset(o);
  return o.output;
}

void run(const std::string& dir, int64_t seq_len, int64_t batch, int64_t prefetch) {
  LoaderOptions o;
  o.path = dir;
  o.seq_len = seq_len;
  o.global_batch = batch;
  o.model_vocab_size = moe::data::Manifest::load(dir).vocab_size;
  o.prefetch = prefetch;
  ShardedLoader loader(o);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 20; ++i) loader.next(tokens);  // warm-up: page cache, thread start
  const int64_t steps = 400;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) loader.next(tokens);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double toks = double(steps * batch * seq_len);
  std::printf("prefetch=%lld seq_len=%lld batch=%lld: %.3g tokens/s (%.1f us/step, %lld steps)\n",
              static_cast<long long>(prefetch), static_cast<long long>(seq_len), static_cast<long long>(batch),
              toks / secs, 1e6 * secs / double(steps), static_cast<long long>(steps));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path tmp = fs::temp_directory_path() / ("moe_bench_loader_" + std::to_string(::getpid()));
    std::string dir = argc > 1 ? argv[1] : prepare_default(tmp);
    std::printf("dataset %s: %lld train tokens\n", dir.c_str(),
                static_cast<long long>(moe::data::Manifest::load(dir).train.tokens));
    for (int64_t seq_len : {256, 1024})
      for (int64_t prefetch : {0, 4}) run(dir, seq_len, 32, prefetch);
    fs::remove_all(tmp);
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return e.exit_code();
  }
  return 0;
}
