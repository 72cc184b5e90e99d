#include "src/comm/mpi_peer_probe.h"

#include <mpi.h>

#include <array>
#include <chrono>
#include <thread>

namespace moe::comm {

namespace {

constexpr int kAskTag = 7101, kAnswerTag = 7102;
constexpr int kMaxStatus = 256;

class MpiPeerProbe final : public PeerProbe {
 public:
  MpiPeerProbe() {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  // MPI_Comm_free is collective-free but must precede MPI_Finalize; a probe outliving MPI leaks it.
  ~MpiPeerProbe() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  void serve(const PeerStatus& mine) override {
    const std::string answer = encode_status(mine);
    while (true) {
      int pending = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kAskTag, comm_, &pending, &st);
      if (!pending) return;
      char dummy = 0;
      MPI_Recv(&dummy, 1, MPI_CHAR, st.MPI_SOURCE, kAskTag, comm_, MPI_STATUS_IGNORE);
      // Buffered: the asker may already have given up; the job is being aborted either way.
      MPI_Request req;
      MPI_Isend(answer.data(), int(answer.size()), MPI_CHAR, st.MPI_SOURCE, kAnswerTag, comm_, &req);
      MPI_Request_free(&req);
    }
  }

  std::vector<std::optional<PeerStatus>> survey(const PeerStatus& mine, double deadline_s) override {
    std::vector<std::optional<PeerStatus>> out(static_cast<size_t>(size_));
    out[size_t(rank_)] = mine;
    const char ask = 1;
    std::vector<MPI_Request> asks, answers;
    std::vector<std::array<char, kMaxStatus>> bufs(static_cast<size_t>(size_));
    std::vector<int> peer;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Request a, b;
      MPI_Isend(&ask, 1, MPI_CHAR, r, kAskTag, comm_, &a);
      MPI_Irecv(bufs[size_t(r)].data(), kMaxStatus, MPI_CHAR, r, kAnswerTag, comm_, &b);
      asks.push_back(a);
      answers.push_back(b);
      peer.push_back(r);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(deadline_s);
    size_t open = answers.size();
    while (open > 0 && std::chrono::steady_clock::now() < until) {
      serve(mine);  // ranks that time out together must answer each other
      for (size_t i = 0; i < answers.size(); ++i) {
        if (answers[i] == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Status st;
        MPI_Test(&answers[i], &done, &st);
        if (!done) continue;
        int n = 0;
        MPI_Get_count(&st, MPI_CHAR, &n);
        out[size_t(peer[i])] = decode_status(std::string(bufs[size_t(peer[i])].data(), size_t(n)));
        --open;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // Unanswered requests are left pending: the caller aborts the job next.
    for (MPI_Request& a : asks) MPI_Request_free(&a);
    return out;
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::shared_ptr<PeerProbe> make_mpi_peer_probe() {
  int provided = 0;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_MULTIPLE) return nullptr;
  return std::make_shared<MpiPeerProbe>();
}

}  // namespace moe::comm
