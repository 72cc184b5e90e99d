#include "data/progress.h"

#include <unistd.h>

#include <cstdio>

namespace moe::data {

Progress::Progress(std::string label, int64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_(total_bytes), enabled_(enabled), tty_(::isatty(2) != 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t bytes_done, int64_t tokens_done) {
  bytes_ = bytes_done;
  tokens_ = tokens_done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  int decile = total_ > 0 ? int(10 * bytes_ / total_) : 10;
  if (tty_ ? now - last_draw_ > std::chrono::milliseconds(200) : decile > last_decile_) {
    last_draw_ = now;
    last_decile_ = decile;
    draw(false);
  }
}

void Progress::finish() {
  if (enabled_ && (tty_ || last_decile_ < 10)) draw(true);  // a pipe already has its 100% line
}

void Progress::draw(bool final_line) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ > 0 ? double(bytes_) / double(total_) : 1.0;
  constexpr int kWidth = 30;
  int filled = int(frac * kWidth);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  double mb = double(bytes_) / 1e6, rate = secs > 0 ? mb / secs : 0.0, tps = secs > 0 ? double(tokens_) / secs : 0.0;
  char tokens[64] = "";
  if (tokens_ > 0) std::snprintf(tokens, sizeof tokens, "  %.3g tokens/s", tps);
  std::fprintf(stderr, "%s%-8s [%s] %5.1f%% %9.1f / %.1f MB  %7.1f MB/s%s%s", tty_ ? "\r" : "", label_.c_str(), bar,
               100.0 * frac, mb, double(total_) / 1e6, rate, tokens, (final_line || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace moe::data
