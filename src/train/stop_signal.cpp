#include "src/train/stop_signal.h"

#include <csignal>

namespace moe {

namespace {
volatile std::sig_atomic_t g_stop = 0;

void on_signal(int sig) {
  if (g_stop) {
    std::signal(sig, SIG_DFL);  // second signal: let it kill us
    std::raise(sig);
    return;
  }
  g_stop = 1;
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
}

bool stop_requested() { return g_stop != 0; }

}  // namespace moe
