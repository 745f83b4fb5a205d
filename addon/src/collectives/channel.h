// The transport interface the generic algorithms are written against (Gloo's "pair"): an ordered,
// reliable byte stream to one peer, with non-blocking halves so a ring step can send and receive at once.
// Backends side by side: shm_channel.cc (byte rings in shared memory) and tcp_channel.cc (a socket).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "collectives/wait.h"

namespace dtrain {

class Channel {
 public:
  virtual ~Channel() = default;
  // Moves up to `len` bytes; returns how many (0 when it would block). Throws CollectiveError naming the
  // peer when the connection is gone.
  virtual size_t trySend(const void* data, size_t len) = 0;
  virtual size_t tryRecv(void* data, size_t len) = 0;
  // Blocks until this channel may make progress in the given directions, or `ms` passes.
  virtual void waitReady(bool send, bool recv, int ms) = 0;
  // Throws CollectiveError naming the peer when it died or gave up. Shared memory cannot see a peer go
  // away in trySend/tryRecv, so whoever waits on a stalled channel calls this; a socket sees it itself.
  // Readiness in the given directions wins over the peer being gone (its last bytes still count).
  virtual void checkAlive(bool send, bool recv) {}
  // A socket to poll (TCP) or -1 (shared memory).
  virtual int pollFd() const { return -1; }
  // A poll for reading wakes only once `bytes` have arrived (TCP: SO_RCVLOWAT); 1 is the default.
  virtual void setRecvWake(size_t bytes) {}
  // Best-effort notice to the peer that this rank gave up, then no more traffic.
  virtual void abort(const std::string& reason) = 0;
  virtual const char* transportName() const = 0;
  int peerRank = -1;  // global rank of the peer, for messages
};

}  // namespace dtrain
