#include "src/comm/peer_status.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace moe::comm {

std::string encode_status(const PeerStatus& s) {
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.3f", s.seconds);
  return std::string(s.in_collective ? "C" : "I") + "|" + s.group + "|" + s.op + "|" + secs;
}

std::optional<PeerStatus> decode_status(const std::string& text) {
  std::vector<std::string> f;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, '|');) f.push_back(part);
  if (f.size() == 3 && !text.empty() && text.back() == '|') f.emplace_back();
  if (f.size() != 4 || (f[0] != "C" && f[0] != "I")) return std::nullopt;
  PeerStatus s;
  s.in_collective = f[0] == "C";
  s.group = f[1];
  s.op = f[2];
  char* end = nullptr;
  s.seconds = std::strtod(f[3].c_str(), &end);
  if (end == f[3].c_str()) return std::nullopt;
  return s;
}

namespace {

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", s);
  return buf;
}

}  // namespace

std::string describe_peers(const std::vector<std::optional<PeerStatus>>& statuses, int self,
                           const std::string& group, const std::string& op, double deadline_s) {
  std::string stalled, mismatched, silent;
  auto add = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : "; ") + item; };
  for (size_t r = 0; r < statuses.size(); ++r) {
    if (int(r) == self) continue;
    const std::string who = "rank " + std::to_string(r);
    if (!statuses[r]) {
      add(silent, who);
      continue;
    }
    const PeerStatus& s = *statuses[r];
    if (!s.in_collective) {
      const std::string last = s.op.empty() ? "none yet" : s.op + " on group " + s.group;
      add(stalled, who + " is outside any collective for " + seconds_text(s.seconds) + " (last completed: " + last +
                       ")");
    } else if (s.group != group || s.op != op) {
      add(mismatched, who + " waits in " + s.op + " on group " + s.group + " for " + seconds_text(s.seconds));
    }
  }
  std::string out;
  if (!stalled.empty()) out += "; stalled: " + stalled;
  if (!mismatched.empty()) out += "; different collective: " + mismatched;
  if (!silent.empty()) out += "; no answer within " + seconds_text(deadline_s) + " (dead or frozen): " + silent;
  return out;
}

}  // namespace moe::comm
