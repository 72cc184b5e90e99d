// `moe data prepare` and `moe data inspect` (data/ does the work; this file only parses flags).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>

#include "data/inspect.h"
#include "data/prepare.h"
#include "src/cli/commands/commands.h"

namespace moe::cli {

namespace {

void print_stats(const data::PrepareOptions& o, const data::PrepareStats& s) {
  const double secs = s.seconds > 0 ? s.seconds : 1e-9;
  const int64_t tokens = s.train_tokens + s.valid_tokens;
  std::printf("prepared %s: %lld files (%lld binary skipped), %lld documents, %.2f MB\n", o.output.c_str(),
              static_cast<long long>(s.files), static_cast<long long>(s.skipped_binary),
              static_cast<long long>(s.documents), double(s.bytes) / 1e6);
  std::printf("  tokenizer %s, vocab_size %lld\n", o.tokenizer.c_str(), static_cast<long long>(s.vocab_size));
  std::printf("  train: %lld tokens, %lld documents, %lld shards\n", static_cast<long long>(s.train_tokens),
              static_cast<long long>(s.train_docs), static_cast<long long>(s.train_shards));
  std::printf("  valid: %lld tokens, %lld documents, %lld shards\n", static_cast<long long>(s.valid_tokens),
              static_cast<long long>(s.valid_docs), static_cast<long long>(s.valid_shards));
  std::printf("  %.2f s: %.2f MB/s, %.0f tokens/s\n", s.seconds, double(s.bytes) / 1e6 / secs, double(tokens) / secs);
}

}  // namespace

void add_data_commands(CLI::App& app, int& exit_code) {
  CLI::App* data = app.add_subcommand("data", "Prepare and inspect tokenized datasets (HDF5 shards)");
  data->require_subcommand(1);

  auto opts = std::make_shared<data::PrepareOptions>();
  CLI::App* prep = data->add_subcommand("prepare", "Tokenize text files, folders or JSONL into HDF5 shards");
  prep->add_option("--input", opts->inputs, "Text files, folders of them (recursive) or *.jsonl")->required();
  prep->add_option("--output", opts->output, "Dataset folder to write")->required();
  prep->add_option("--tokenizer", opts->tokenizer, "byte or bpe")->check(CLI::IsMember({"byte", "bpe"}));
  prep->add_option("--vocab-size", opts->vocab_size, "BPE vocabulary size incl. 256 bytes and <eos> (default 4096)");
  prep->add_option("--shard-tokens", opts->shard_tokens, "Maximum tokens per shard file");
  prep->add_option("--valid-fraction", opts->valid_fraction, "Fraction of documents for the valid split");
  prep->add_option("--seed", opts->seed, "Seed of the train/valid split");
  prep->callback([opts, &exit_code] {
    data::PrepareStats st = data::prepare_dataset(*opts);
    print_stats(*opts, st);
    exit_code = 0;
  });

  auto dir = std::make_shared<std::string>();
  CLI::App* insp = data->add_subcommand("inspect", "Summarize a dataset and verify its shard checksums");
  insp->add_option("dir", *dir, "Dataset folder")->required();
  insp->callback([dir, &exit_code] {
    data::inspect_dataset(*dir, std::cout);
    exit_code = 0;
  });
}

}  // namespace moe::cli
