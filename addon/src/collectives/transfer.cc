#include "collectives/transfer.h"

#include <poll.h>

#include <algorithm>

#include "collectives/errors.h"

namespace dtrain {

void runTransfers(std::vector<Xfer>& xs, const Deadline& d, const std::function<void(size_t, size_t)>& onRecv) {
  int idle = 0;
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
      if (x.done < x.len && x.ch->pollFd() >= 0) fds.push_back({x.ch->pollFd(), short(x.send ? POLLOUT : POLLIN), 0});
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
