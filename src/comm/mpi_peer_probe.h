// PeerProbe over a private duplicate of MPI_COMM_WORLD, used only by watchdog threads (the
// runtime initialises MPI with MPI_THREAD_MULTIPLE), so its messages never meet training traffic.
#pragma once
#include <memory>

#include "src/comm/peer_status.h"

namespace moe::comm {

// Null when MPI does not provide MPI_THREAD_MULTIPLE (the watchdog then reports without peers).
std::shared_ptr<PeerProbe> make_mpi_peer_probe();

}  // namespace moe::comm
