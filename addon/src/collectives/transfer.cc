#include "collectives/transfer.h"

#include <poll.h>

#include <algorithm>

#include "collectives/errors.h"

namespace dtrain {

namespace {

// A large receive over a socket sleeps until this much of it has arrived (or the rest, if less) instead of
// waking for every few packets: a rate-limited link (tbf) releases data in small pieces, and a wakeup each
// costs the progress thread send/recv/poll calls that take CPU from the compute it should overlap.
// 1 MiB is 8 ms at 1 Gbit/s; receives under 256 KiB keep the default (wake on the first byte).
constexpr size_t kRecvWakeBytes = 1024 * 1024;
constexpr size_t kRecvWakeMinLen = 256 * 1024;

size_t recvWakeFor(const Xfer& x) { return x.len >= kRecvWakeMinLen ? std::min(x.len - x.done, kRecvWakeBytes) : 1; }

// Puts back the default wake on the channels a transfer received on, however the transfer ends.
struct RecvWakeReset {
  std::vector<Xfer>& xs;
  ~RecvWakeReset() {
    for (auto& x : xs)
      if (!x.send) x.ch->setRecvWake(1);
  }
};

}  // namespace

void runTransfers(std::vector<Xfer>& xs, const Deadline& d, const std::function<void(size_t, size_t)>& onRecv) {
  int idle = 0;
  RecvWakeReset reset{xs};
  for (;;) {
    bool progress = false, pending = false;
    for (size_t i = 0; i < xs.size(); ++i) {
      Xfer& x = xs[i];
      if (x.done == x.len) continue;
      size_t n = x.send ? x.ch->trySend(x.p + x.done, x.len - x.done) : x.ch->tryRecv(x.p + x.done, x.len - x.done);
      if (n) {
        x.done += n;
        progress = true;
        if (!x.send && onRecv) onRecv(i, x.done);
      }
      if (x.done < x.len) pending = true;
    }
    if (!pending) return;
    if (progress) {
      idle = 0;
      continue;
    }
    if (++idle < 64) {
      cpuRelax();
      continue;
    }
    if (closing() || d.passed()) {
      std::string who;
      for (auto& x : xs)
        if (x.done < x.len) who += (who.empty() ? "" : ", ") + std::to_string(x.ch->peerRank);
      if (closing()) throw CollectiveError("dist.close() was called while this op waited for rank(s) " + who);
      throw CollectiveError("timed out after " + std::to_string(d.timeoutMs) + " ms waiting for rank(s) " + who +
                            " (collective_timeout; did every rank call the same op?)");
    }
    std::vector<pollfd> fds;
    for (auto& x : xs)
      if (x.done < x.len && x.ch->pollFd() >= 0) {
        if (!x.send) x.ch->setRecvWake(recvWakeFor(x));
        fds.push_back({x.ch->pollFd(), short(x.send ? POLLOUT : POLLIN), 0});
      }
    if (!fds.empty()) {
      ::poll(fds.data(), fds.size(), std::min(10, d.msLeft() + 1));
    } else {
      for (auto& x : xs)
        if (x.done < x.len) {
          x.ch->waitReady(x.send, !x.send, 2);
          break;
        }
    }
  }
}

}  // namespace dtrain
