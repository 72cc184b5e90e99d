// A progress bar on stderr for long passes over the input (bytes and tokens done, rates).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace moe::data {

class Progress {
 public:
  // Silent when `enabled` is false (small inputs); redraws in place on a terminal, otherwise
  // prints a line every 10%.
  Progress(std::string label, int64_t total_bytes, bool enabled);
  void update(int64_t bytes_done, int64_t tokens_done);
  void finish();

 private:
  void draw(bool final_line);
  std::string label_;
  int64_t total_ = 0, bytes_ = 0, tokens_ = 0;
  bool enabled_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace moe::data
