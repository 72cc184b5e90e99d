// What one rank was doing when another rank's watchdog fired: inside a collective (which one, for
// how long) or outside any (computing or stuck) since its last completed one. The watchdog asks
// every rank for this before it aborts, so the message names the rank that stalled, not only the
// rank that waited.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace moe::comm {

struct PeerStatus {
  bool in_collective = false;
  std::string group, op;  // the pending operation, or the last completed one ("" if none yet)
  double seconds = 0;     // how long it has been pending, or how long since the last one completed
};

// One line per status, for the wire ("C|group|op|seconds" or "I|group|op|seconds").
std::string encode_status(const PeerStatus& s);
std::optional<PeerStatus> decode_status(const std::string& text);

// The diagnosis appended to the timeout message. statuses[r] is rank r's answer (nullopt: no answer
// within the survey deadline). Ranks outside any collective are the stalled ones; ranks in a
// different operation than `op` on `group` point at mismatched collectives; silent ranks are dead or
// frozen. Returns "" when there is nothing to add.
std::string describe_peers(const std::vector<std::optional<PeerStatus>>& statuses, int self,
                           const std::string& group, const std::string& op, double deadline_s);

// Asks every rank of the job for its PeerStatus (implemented over MPI in mpi_peer_probe.cpp).
class PeerProbe {
 public:
  virtual ~PeerProbe() = default;
  // Answers the questions other ranks have asked (called periodically by the watchdog thread).
  virtual void serve(const PeerStatus& mine) = 0;
  // Asks all ranks and collects answers for up to deadline_s, serving others' questions meanwhile.
  virtual std::vector<std::optional<PeerStatus>> survey(const PeerStatus& mine, double deadline_s) = 0;
};

}  // namespace moe::comm
