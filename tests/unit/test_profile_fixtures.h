// Shared by the Profile* tests: a per-test temp folder and hand-built routing statistics.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "moe/load_stats.h"

namespace moe::test {

class ProfileTempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("moe_profile_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

 public:
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

// Stats of one layer with the given per-expert counts (assignments = their sum).
inline LayerLoadStats layer_stats(std::vector<int64_t> counts, int64_t dropped = 0, double entropy = 1.0) {
  LayerLoadStats s;
  s.tokens_per_expert = std::move(counts);
  for (int64_t c : s.tokens_per_expert) s.assignments += c;
  s.dropped = dropped;
  s.entropy = entropy;
  return s;
}

}  // namespace moe::test
