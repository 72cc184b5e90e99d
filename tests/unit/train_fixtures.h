// A small generated corpus and config for in-process training tests.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include "data/prepare.h"
#include "src/comm/communicator.h"
#include "src/train/config.h"

namespace moe::test {

// MPI once per process (tests in one binary share it; finalised at exit).
inline comm::Communicator& test_world() {
  static comm::Runtime rt(nullptr, nullptr);
  return *rt.world();
}

inline std::string fresh_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("moe_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// Repetitive English-like documents: learnable structure, so the loss falls fast.
inline std::string make_corpus(const std::string& dir) {
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "of", "my", "friend"};
  std::string text_dir = dir + "/text";
  std::filesystem::create_directories(text_dir);
  std::ofstream f(text_dir + "/corpus.txt");
  uint64_t x = 12345;
  for (int doc = 0; doc < 400; ++doc) {
    for (int w = 0; w < 40; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      f << words[(x >> 33) % 14] << (w % 9 == 8 ? ".\n" : " ");
    }
    f << "\n%\n";
  }
  f.close();
  data::PrepareOptions o;
  o.inputs = {text_dir};
  o.output = dir + "/data";
  o.progress = false;
  data::prepare_dataset(o);
  return o.output;
}

inline Config small_train_config(const std::string& data_path) {
  Config c;
  c.source = "test";
  c.model.vocab_size = 260;
  c.model.d_model = 32;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.seq_len = 32;
  c.model.ffn_hidden = 64;
  c.model.moe_every = 2;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 32;
  c.train.steps = 20;
  c.train.batch_size = 4;
  c.train.log_every = 1;
  c.optim.warmup_steps = 5;
  c.data.path = data_path;
  c.checkpoint.every = 0;
  return c;
}

}  // namespace moe::test
